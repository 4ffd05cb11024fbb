//! `psc set triggers bc/NAME --from-github|--from-gitlab|--from-bitbucket|
//! --from-webhook [--sign] [--remove]`: adds (or removes) webhook triggers.
//! A trigger's URL secret is generated and kept in a Secret of its own
//! (`<bc>-<type>-webhook`, key `WebHookSecretKey`) that the trigger
//! references, so those who may only view the config never see it; the
//! URL is printed once. `--sign` also generates a signing key (key
//! `WebHookSignatureKey` of the same Secret) that deliveries must be signed
//! with (GitHub's, Gitea's "Secret", GitLab's "Secret token").

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use rand::RngCore;
use serde_json::{json, Value};

use super::builds::configs_path;
use super::Session;
use crate::client::error_code;
use crate::Global;

#[derive(Subcommand)]
pub enum SetCommand {
    /// Add or remove a build config's webhook triggers
    Triggers(TriggersArgs),
}

#[derive(Args)]
pub struct TriggersArgs {
    /// bc/NAME (or NAME)
    target: String,
    /// A GitHub (also Gitea, Gogs) webhook
    #[arg(long)]
    from_github: bool,
    /// A GitLab webhook
    #[arg(long)]
    from_gitlab: bool,
    /// A Bitbucket webhook
    #[arg(long)]
    from_bitbucket: bool,
    /// A Generic webhook
    #[arg(long)]
    from_webhook: bool,
    /// The Generic webhook applies the env a delivery carries
    #[arg(long, requires = "from_webhook")]
    from_webhook_allow_env: bool,
    /// Also require the provider's signature, with a generated signing key
    #[arg(long, conflicts_with = "remove")]
    sign: bool,
    /// Remove the triggers of the types named (and their Secrets)
    #[arg(long)]
    remove: bool,
}

const TYPES: [(&str, &str); 4] = [
    ("GitHub", "github"),
    ("GitLab", "gitlab"),
    ("Bitbucket", "bitbucket"),
    ("Generic", "generic"),
];

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn secrets_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/secrets")
}

pub async fn run(g: &Global, command: SetCommand) -> Result<()> {
    match command {
        SetCommand::Triggers(args) => triggers(g, args).await,
    }
}

async fn triggers(g: &Global, args: TriggersArgs) -> Result<()> {
    let session = Session::load(g)?;
    let ns = session.namespace()?;
    let client = &session.client;
    let name = ["bc/", "buildconfig/", "buildconfigs/"]
        .iter()
        .find_map(|p| args.target.strip_prefix(p))
        .unwrap_or(&args.target);
    let chosen: Vec<(&str, &str)> = TYPES
        .into_iter()
        .zip([
            args.from_github,
            args.from_gitlab,
            args.from_bitbucket,
            args.from_webhook,
        ])
        .filter(|(_, on)| *on)
        .map(|(t, _)| t)
        .collect();
    if chosen.is_empty() {
        bail!("name a trigger: --from-github, --from-gitlab, --from-bitbucket or --from-webhook");
    }
    let path = format!("{}/{name}", configs_path(ns));
    let mut bc = client.get(&path).await?;
    let triggers = bc["spec"]["triggers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |ty: &str| triggers.iter().any(|t| t["type"] == ty);
    if args.remove {
        let kept: Vec<Value> = triggers
            .iter()
            .filter(|t| !chosen.iter().any(|(ty, _)| t["type"] == *ty))
            .cloned()
            .collect();
        bc["spec"]["triggers"] = Value::Array(kept);
        client.put(&path, &bc).await?;
        for (_, field) in &chosen {
            let secret = format!("{}/{name}-{field}-webhook", secrets_path(ns));
            if let Err(e) = client.delete(&secret).await {
                if error_code(&e) != Some(404) {
                    return Err(e);
                }
            }
        }
        println!("buildconfig.build.openshift.io/{name} triggers updated");
        return Ok(());
    }
    if let Some((ty, _)) = chosen.iter().find(|(ty, _)| has(ty)) {
        bail!("{name} already has a {ty} webhook trigger: remove it first (--remove) to make a new secret");
    }
    let mut added = triggers;
    let mut printed = Vec::new();
    for (ty, field) in &chosen {
        let secret_name = format!("{name}-{field}-webhook");
        let url_secret = random_hex(20);
        let mut data = json!({"WebHookSecretKey": url_secret});
        let signing = args.sign.then(|| random_hex(32));
        if let Some(key) = &signing {
            data["WebHookSignatureKey"] = json!(key);
        }
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": ns,
                         "labels": {"buildconfig": name}},
            "type": "Opaque", "stringData": data});
        client.post(&secrets_path(ns), &secret).await?;
        let mut hook = json!({"secretReference": {"name": secret_name}});
        if signing.is_some() {
            hook["signatureSecretRef"] = json!({"name": secret_name});
        }
        if *field == "generic" && args.from_webhook_allow_env {
            hook["allowEnv"] = json!(true);
        }
        added.push(json!({"type": ty, *field: hook}));
        let url = format!(
            "{}/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{name}/webhooks/{url_secret}/{field}",
            client.server.trim_end_matches('/')
        );
        printed.push((ty.to_string(), url, signing));
    }
    bc["spec"]["triggers"] = Value::Array(added);
    client.put(&path, &bc).await?;
    println!("buildconfig.build.openshift.io/{name} triggers updated");
    for (ty, url, signing) in printed {
        println!("{ty} webhook URL (shown once; kept in a Secret): {url}");
        if let Some(key) = signing {
            println!("{ty} signing secret (the hook's \"Secret\"): {key}");
        }
    }
    Ok(())
}
