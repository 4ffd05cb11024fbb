use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;

use crate::client::Client;
use crate::config::Config;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Args)]
pub struct LoginArgs {
    /// Server URL [default: the current server, else http://127.0.0.1:8080]
    server: Option<String>,
    #[arg(short = 'u', long)]
    username: Option<String>,
    #[arg(short = 'p', long)]
    password: Option<String>,
}

fn normalize(server: &str) -> String {
    let s = server.trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

fn prompt(label: &str, secret: bool) -> Result<String> {
    if secret && std::io::stdin().is_terminal() {
        return rpassword::prompt_password(label).context("reading the password");
    }
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn login(args: LoginArgs) -> Result<()> {
    let mut config = Config::load()?;
    let server = match &args.server {
        Some(s) => normalize(s),
        None => config
            .current()
            .map(|c| c.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string()),
    };
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = match args.password {
        Some(p) => p,
        None => prompt("Password: ", true)?,
    };
    if username.is_empty() {
        bail!("a user name is required");
    }
    let anonymous = Client::new(&server, "")?;
    let (code, body) = anonymous
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", &username),
                ("password", &password),
            ],
        )
        .await?;
    if !code.is_success() {
        let why = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("login failed");
        bail!("Login failed ({code}): {why}");
    }
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the server sent no token"))?
        .to_string();
    let client = Client::new(&server, &token)?;
    let projects = project_names(&client).await?;
    let previous_ns = config
        .current()
        .filter(|c| c.server == server && c.user == username)
        .map(|c| c.namespace.clone());
    let ctx = config.upsert(&server, &username, &token);
    let ns = match previous_ns.filter(|ns| projects.contains(ns)) {
        Some(ns) => ns,
        None if projects.len() == 1 => projects[0].clone(),
        None => String::new(),
    };
    ctx.namespace = ns.clone();
    config.save()?;
    println!("Login successful.\n");
    if projects.is_empty() {
        println!("You don't have any projects. You can try to create a new project, by running\n\n    psc new-project <projectname>\n");
    } else {
        println!("You have access to the following projects and can switch between them with 'psc project <projectname>':\n");
        for p in &projects {
            println!("  {} {p}", if *p == ns { "*" } else { " " });
        }
        println!();
        if !ns.is_empty() {
            println!("Using project \"{ns}\".");
        }
    }
    Ok(())
}

pub async fn project_names(client: &Client) -> Result<Vec<String>> {
    let list = client.get("/apis/project.openshift.io/v1/projects").await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect())
}

pub async fn logout() -> Result<()> {
    let mut config = Config::load()?;
    let ctx = config
        .current_mut()
        .filter(|c| !c.token.is_empty())
        .ok_or_else(|| anyhow!("you are not logged in"))?;
    let client = Client::new(&ctx.server, &ctx.token)?;
    let (code, _) = client.post_form("/oauth/revoke", &[]).await?;
    if !code.is_success() {
        bail!("the server refused to revoke the token ({code})");
    }
    let (user, server) = (ctx.user.clone(), ctx.server.clone());
    ctx.token.clear();
    config.save()?;
    println!("Logged \"{user}\" out on \"{server}\"");
    Ok(())
}

pub async fn whoami(show_token: bool, show_server: bool) -> Result<()> {
    let session = super::Session::load(&crate::Global::default())?;
    if show_token {
        println!("{}", session.client.token());
        return Ok(());
    }
    if show_server {
        println!("{}", session.client.server);
        return Ok(());
    }
    let me = session
        .client
        .get("/apis/user.openshift.io/v1/users/~")
        .await?;
    println!(
        "{}",
        me.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    Ok(())
}
