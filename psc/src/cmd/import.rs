//! `psc import-image IS[:TAG] [--from=PULLSPEC] [--confirm] [--scheduled]
//! [--insecure]`: sets the tag's external source (or asks to re-import it)
//! and waits for the import controller's result.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::Session;
use crate::client::error_code;
use crate::output::s;
use crate::Global;

#[derive(Args)]
pub struct ImportArgs {
    /// IS[:TAG] (the tag defaults to latest)
    target: String,
    /// The external image, host[:port]/repository[:tag]
    #[arg(long)]
    from: Option<String>,
    /// Create the image stream, or change where the tag imports from
    #[arg(long)]
    confirm: bool,
    /// Import every tag of the repository (up to the server's cap)
    #[arg(long)]
    all: bool,
    #[arg(long)]
    scheduled: bool,
    #[arg(long)]
    insecure: bool,
    #[arg(long, value_parser = ["source", "local"])]
    reference_policy: Option<String>,
}

pub async fn run(g: &Global, args: ImportArgs) -> Result<()> {
    let session = Session::load(g)?;
    let ns = session.namespace()?.to_string();
    if args.all {
        return import_all(&session, &ns, &args).await;
    }
    let (is, tag) = args
        .target
        .split_once(':')
        .unwrap_or((args.target.as_str(), "latest"));
    if is.contains('@') || tag.starts_with("sha256") {
        bail!("to import an image by digest use the 'tag' command");
    }
    let stream_path = format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{is}");
    let stream = match session.client.get(&stream_path).await {
        Ok(s) => Some(s),
        Err(e) if error_code(&e) == Some(404) => None,
        Err(e) => return Err(e),
    };
    let current = stream.as_ref().and_then(|st| {
        st.pointer("/spec/tags")?
            .as_array()?
            .iter()
            .find(|t| s(t, "/name") == tag)
            .cloned()
    });
    let from = match (&args.from, &current) {
        (Some(f), Some(cur)) if s(cur, "/from/name") != f && !args.confirm => {
            bail!(
                "tag {tag} already imports from {}; use --confirm to import from {f} instead",
                s(cur, "/from/name")
            )
        }
        (Some(f), _) => f.clone(),
        (None, Some(cur)) if s(cur, "/from/kind") == "DockerImage" => {
            s(cur, "/from/name").to_string()
        }
        (None, Some(_)) => bail!("tag {tag} does not come from an external image: use --from"),
        (None, None) if stream.is_none() => {
            bail!("no image stream {is:?}: use --from and --confirm to create it")
        }
        (None, None) => bail!("image stream {is:?} has no tag {tag:?}: use --from"),
    };
    if stream.is_none() && !args.confirm {
        bail!("--confirm is needed to create the image stream {is:?}");
    }
    let mut spec = current.unwrap_or_else(|| json!({}));
    spec["from"] = json!({"kind": "DockerImage", "name": from});
    spec["importPolicy"] = json!({"scheduled": args.scheduled, "insecure": args.insecure});
    if let Some(p) = &args.reference_policy {
        spec["referencePolicy"] = json!({"type": if p == "local" { "Local" } else { "Source" }});
    }
    let body = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStreamTag", "metadata": {"name": format!("{is}:{tag}"), "namespace": ns}, "tag": spec});
    session
        .client
        .put(
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{is}:{tag}"),
            &body,
        )
        .await?;
    // The import controller answers on the stream: a new event or a failure
    // condition at (at least) the spec tag's generation.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (stream, failure) = loop {
        let st = session.client.get(&stream_path).await?;
        let wanted = st
            .pointer("/spec/tags")
            .and_then(Value::as_array)
            .and_then(|ts| ts.iter().find(|t| s(t, "/name") == tag))
            .and_then(|t| t["generation"].as_i64())
            .unwrap_or(0);
        let entry = st
            .pointer("/status/tags")
            .and_then(Value::as_array)
            .and_then(|ts| ts.iter().find(|t| s(t, "/tag") == tag))
            .cloned();
        if let Some(e) = entry {
            if e.pointer("/items/0/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                >= wanted
            {
                break (st, None);
            }
            if let Some(c) = e["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["generation"].as_i64().unwrap_or(0) >= wanted)
            }) {
                let message = s(c, "/message").to_string();
                break (st, Some(message));
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the import of {from} did not finish within a minute"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match &failure {
        None => println!("imagestream.image.openshift.io/{is} imported\n"),
        Some(_) => println!("imagestream.image.openshift.io/{is} imported with errors\n"),
    }
    let stream = super::describe::typed(&stream, "ImageStream")?;
    print!("{}", super::describe::image_stream(&stream));
    if let Some(message) = failure {
        eprintln!("error: tag {tag} failed: {message}");
        return Err(super::Reported.into());
    }
    Ok(())
}

/// `--all`: one ImageStreamImport of the whole repository.
async fn import_all(session: &Session, ns: &str, args: &ImportArgs) -> Result<()> {
    if args.target.contains(':') {
        bail!("--all imports a whole repository: name the image stream without a tag");
    }
    let from = args
        .from
        .as_deref()
        .ok_or_else(|| anyhow!("--all needs --from=host/repository"))?;
    let is = &args.target;
    let exists = match session
        .client
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{is}"
        ))
        .await
    {
        Ok(_) => true,
        Err(e) if error_code(&e) == Some(404) => false,
        Err(e) => return Err(e),
    };
    if !exists && !args.confirm {
        bail!("--confirm is needed to create the image stream {is:?}");
    }
    let mut repository = json!({"from": {"kind": "DockerImage", "name": from}, "importPolicy": {"scheduled": args.scheduled, "insecure": args.insecure}});
    if let Some(p) = &args.reference_policy {
        repository["referencePolicy"] =
            json!({"type": if p == "local" { "Local" } else { "Source" }});
    }
    let body = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport", "metadata": {"name": is}, "spec": {"import": true, "repository": repository}});
    let answer = session
        .client
        .post(
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamimports"),
            &body,
        )
        .await?;
    let failures: Vec<(String, String)> = answer["status"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| s(i, "/status/status") != "Success")
        .map(|i| {
            (
                s(i, "/tag").to_string(),
                s(i, "/status/message").to_string(),
            )
        })
        .collect();
    if failures.is_empty() {
        println!("imagestream.image.openshift.io/{is} imported\n");
    } else {
        println!("imagestream.image.openshift.io/{is} imported with errors\n");
    }
    let stream = super::describe::typed(&answer["status"]["import"], "ImageStream")?;
    print!("{}", super::describe::image_stream(&stream));
    let more: Vec<&str> = answer["status"]["repository"]["additionalTags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !more.is_empty() {
        println!(
            "info: The remote repository contained {} additional tags which were not imported: {}",
            more.len(),
            more.join(", ")
        );
    }
    for (tag, message) in &failures {
        eprintln!("error: tag {tag} failed: {message}");
    }
    if !failures.is_empty() {
        return Err(super::Reported.into());
    }
    Ok(())
}
