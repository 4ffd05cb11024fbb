//! `psc rollout latest|history|undo dc/NAME`.

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use super::Session;
use crate::output::s;
use crate::Global;

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Deploy a new version now
    Latest { target: String },
    /// List the versions deployed
    History { target: String },
    /// Deploy an earlier version's template again
    Undo {
        target: String,
        /// The version to go back to [default: the one before the latest]
        #[arg(long = "to-revision")]
        to_revision: Option<i64>,
    },
}

fn dc_name(target: &str) -> Result<&str> {
    let name = target
        .strip_prefix("dc/")
        .or_else(|| target.strip_prefix("deploymentconfig/"))
        .or_else(|| target.strip_prefix("deploymentconfigs/"))
        .ok_or_else(|| anyhow!("name a deployment config as dc/NAME"))?;
    if name.is_empty() {
        bail!("name a deployment config as dc/NAME");
    }
    Ok(name)
}

async fn records(session: &Session, ns: &str, name: &str) -> Result<Vec<Value>> {
    let list = session
        .client
        .get(&format!("/api/v1/namespaces/{ns}/replicationcontrollers?labelSelector=openshift.io%2Fdeployment-config.name%3D{name}"))
        .await?;
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(version);
    Ok(items)
}

fn version(rc: &Value) -> i64 {
    s(
        rc,
        "/metadata/annotations/openshift.io~1deployment-config.latest-version",
    )
    .parse()
    .unwrap_or(0)
}

pub async fn run(g: &Global, cmd: RolloutCommand) -> Result<()> {
    let session = Session::load(g)?;
    let ns = session.namespace()?.to_string();
    let dc_path =
        |name: &str| format!("/apis/apps.openshift.io/v1/namespaces/{ns}/deploymentconfigs/{name}");
    match cmd {
        RolloutCommand::Latest { target } => {
            let name = dc_name(&target)?;
            let body = json!({"kind": "DeploymentRequest", "apiVersion": "apps.openshift.io/v1", "name": name, "latest": true, "force": true});
            let dc = session
                .client
                .post(&format!("{}/instantiate", dc_path(name)), &body)
                .await?;
            println!(
                "deploymentconfig.apps.openshift.io/{name} rolled out (version {})",
                dc["status"]["latestVersion"]
            );
        }
        RolloutCommand::History { target } => {
            let name = dc_name(&target)?;
            session.client.get(&dc_path(name)).await?;
            let rcs = records(&session, &ns, name).await?;
            println!("deploymentconfigs \"{name}\"");
            if rcs.is_empty() {
                println!("No rollout history found.");
                return Ok(());
            }
            println!("{:<10} {:<10} CAUSE", "REVISION", "STATUS");
            for rc in &rcs {
                let cause = match s(
                    rc,
                    "/metadata/annotations/openshift.io~1deployment.status-reason",
                ) {
                    "ImageChange" => "image change",
                    "ConfigChange" => "config change",
                    "Manual" => "manual change",
                    "Rollback" => "rollback",
                    other => other,
                };
                println!(
                    "{:<10} {:<10} {cause}",
                    version(rc),
                    s(rc, "/metadata/annotations/openshift.io~1deployment.phase")
                );
            }
        }
        RolloutCommand::Undo {
            target,
            to_revision,
        } => {
            let name = dc_name(&target)?;
            let dc = session.client.get(&dc_path(name)).await?;
            let latest = dc["status"]["latestVersion"].as_i64().unwrap_or(0);
            let to = to_revision.unwrap_or(latest - 1);
            if to < 1 || to > latest {
                bail!("no revision {to} to roll back to (latest is {latest})");
            }
            let rc = session
                .client
                .get(&format!(
                    "/api/v1/namespaces/{ns}/replicationcontrollers/{name}-{to}"
                ))
                .await
                .map_err(|_| anyhow!("revision {to} of {name} not found"))?;
            let mut template = rc["spec"]["template"].clone();
            // The deployment's own labels are not part of the config's template.
            if let Some(labels) = template
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove("deployment");
                labels.remove("deploymentconfig");
            }
            // As oc does: image triggers stop, or they would undo the undo.
            let mut triggers = dc["spec"]["triggers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for t in &mut triggers {
                if t["type"] == "ImageChange" {
                    t["imageChangeParams"]["automatic"] = json!(false);
                }
            }
            let has_config_change = triggers.iter().any(|t| t["type"] == "ConfigChange");
            session
                .client
                .merge_patch(
                    &dc_path(name),
                    &json!({"spec": {"template": template, "triggers": triggers}}),
                )
                .await?;
            if !has_config_change {
                let body = json!({"kind": "DeploymentRequest", "apiVersion": "apps.openshift.io/v1", "name": name, "latest": false, "force": true});
                session
                    .client
                    .post(&format!("{}/instantiate", dc_path(name)), &body)
                    .await?;
            }
            println!("deploymentconfig.apps.openshift.io/{name} rolled back to revision {to}");
            println!("Warning: the image change triggers of {name} were disabled; re-enable them by editing the config (psc apply -f)");
        }
    }
    Ok(())
}
