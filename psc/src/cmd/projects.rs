use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use super::Session;
use crate::client::error_code;
use crate::config::Config;
use crate::Global;

#[derive(Args)]
pub struct NewProjectArgs {
    name: String,
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Do not switch to the new project
    #[arg(long)]
    skip_config_write: bool,
}

pub async fn new_project(args: NewProjectArgs) -> Result<()> {
    let mut session = Session::load(&Global::default())?;
    let body = json!({
        "kind": "ProjectRequest",
        "apiVersion": "project.openshift.io/v1",
        "metadata": {"name": args.name},
        "displayName": args.display_name.unwrap_or_default(),
        "description": args.description.unwrap_or_default(),
    });
    session
        .client
        .post("/apis/project.openshift.io/v1/projectrequests", &body)
        .await?;
    let server = session.client.server.clone();
    if args.skip_config_write {
        println!("Project \"{}\" created on server \"{server}\".", args.name);
        return Ok(());
    }
    if let Some(ctx) = session.config.current_mut() {
        ctx.namespace = args.name.clone();
    }
    session.config.save()?;
    println!(
        "Now using project \"{}\" on server \"{server}\".",
        args.name
    );
    Ok(())
}

pub async fn list() -> Result<()> {
    let session = Session::load(&Global::default())?;
    let names = super::auth::project_names(&session.client).await?;
    let current = session
        .config
        .current()
        .map(|c| c.namespace.clone())
        .unwrap_or_default();
    if names.is_empty() {
        println!("You are not a member of any projects. You can request a project to be created with the 'new-project' command.");
        return Ok(());
    }
    println!("You have access to the following projects and can switch between them with 'psc project <projectname>':\n");
    for n in &names {
        println!("  {} {n}", if *n == current { "*" } else { " " });
    }
    println!();
    if names.contains(&current) {
        println!(
            "Using project \"{current}\" on server \"{}\".",
            session.client.server
        );
    }
    Ok(())
}

pub async fn switch(name: Option<String>) -> Result<()> {
    let session = Session::load(&Global::default())?;
    let server = session.client.server.clone();
    let Some(name) = name else {
        let ns = session.namespace()?;
        println!("Using project \"{ns}\" on server \"{server}\".");
        return Ok(());
    };
    if let Err(e) = session
        .client
        .get(&format!("/apis/project.openshift.io/v1/projects/{name}"))
        .await
    {
        match error_code(&e) {
            Some(403 | 404) => bail!("You are not a member of project \"{name}\"."),
            _ => return Err(e),
        }
    }
    let mut config: Config = session.config;
    if let Some(ctx) = config.current_mut() {
        ctx.namespace = name.clone();
    }
    config.save()?;
    println!("Now using project \"{name}\" on server \"{server}\".");
    Ok(())
}
