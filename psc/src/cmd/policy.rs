//! `psc policy add-role-to-user` / `remove-role-from-user` and the
//! `-to-group` forms. Bindings are named after their role, as in
//! OpenShift 3 (`admin`, `edit`, `view`). The groups there are are the
//! virtual ones: `system:authenticated`, `system:serviceaccounts[:<ns>]`.

use anyhow::{bail, Result};
use clap::Subcommand;
use podspace_api::auth::{Principal, Role};
use serde_json::{json, Value};

use super::Session;
use crate::client::error_code;
use crate::Global;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Give users (or, with -z, service accounts) a role in the project
    AddRoleToUser {
        role: String,
        users: Vec<String>,
        /// Service account names in the project
        #[arg(short = 'z', long = "serviceaccount")]
        service_accounts: Vec<String>,
    },
    /// Take a role away from users or service accounts in the project
    RemoveRoleFromUser {
        role: String,
        users: Vec<String>,
        #[arg(short = 'z', long = "serviceaccount")]
        service_accounts: Vec<String>,
    },
    /// Give groups a role in the project (e.g. system:authenticated)
    AddRoleToGroup {
        role: String,
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Take a role away from groups in the project
    RemoveRoleFromGroup {
        role: String,
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Whom a binding names.
enum Subject {
    Principal(Principal),
    Group(String),
}

const BINDINGS: &str = "/apis/authorization.openshift.io/v1/namespaces";

fn subject_value(subject: &Subject) -> Value {
    match subject {
        Subject::Group(g) => json!({"kind": "Group", "name": g}),
        Subject::Principal(p) => match p.as_service_account() {
            Some((ns, name)) => json!({"kind": "ServiceAccount", "name": name, "namespace": ns}),
            None => json!({"kind": "User", "name": p.name}),
        },
    }
}

fn same_subject(s: &Value, subject: &Subject, ns: &str) -> bool {
    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = s.get("kind").and_then(Value::as_str);
    let p = match subject {
        Subject::Group(g) => return kind == Some("Group") && name == g,
        Subject::Principal(p) => p,
    };
    match (kind, p.as_service_account()) {
        (Some("ServiceAccount"), Some((sa_ns, sa))) => {
            let s_ns = s
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(ns);
            s_ns == sa_ns && name == sa
        }
        (Some("User") | None, None) => name == p.name,
        _ => false,
    }
}

pub async fn run(g: &Global, cmd: PolicyCommand) -> Result<()> {
    let session = Session::load(g)?;
    let ns = session.namespace()?.to_string();
    let (adding, role, users, sas, groups) = match cmd {
        PolicyCommand::AddRoleToUser {
            role,
            users,
            service_accounts,
        } => (true, role, users, service_accounts, Vec::new()),
        PolicyCommand::RemoveRoleFromUser {
            role,
            users,
            service_accounts,
        } => (false, role, users, service_accounts, Vec::new()),
        PolicyCommand::AddRoleToGroup { role, groups } => {
            (true, role, Vec::new(), Vec::new(), groups)
        }
        PolicyCommand::RemoveRoleFromGroup { role, groups } => {
            (false, role, Vec::new(), Vec::new(), groups)
        }
    };
    if Role::parse(&role).is_none() {
        bail!("unknown role {role:?}: one of {}", Role::NAMES.join(", "));
    }
    let mut principals: Vec<Subject> = users
        .iter()
        .map(|u| Subject::Principal(Principal::user(u)))
        .collect();
    principals.extend(
        sas.iter()
            .map(|sa| Subject::Principal(Principal::service_account(&ns, sa))),
    );
    principals.extend(groups.iter().cloned().map(Subject::Group));
    if principals.is_empty() {
        bail!("name at least one user, or a service account with -z");
    }
    let names: Vec<String> = users
        .iter()
        .cloned()
        .chain(sas.iter().map(|s| format!("{ns}/{s}")))
        .chain(groups.iter().cloned())
        .collect();
    let quoted = names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if adding {
        add(&session, &ns, &role, &principals).await?;
        println!("role {role:?} added: {quoted}");
    } else {
        remove(&session, &ns, &role, &principals).await?;
        println!("role {role:?} removed: {quoted}");
    }
    Ok(())
}

async fn add(session: &Session, ns: &str, role: &str, principals: &[Subject]) -> Result<()> {
    let path = format!("{BINDINGS}/{ns}/rolebindings/{role}");
    // Retried on a conflict: someone else changed the binding meanwhile.
    for _ in 0..5 {
        let result = match session.client.get(&path).await {
            Ok(mut binding) => {
                if binding.pointer("/roleRef/name").and_then(Value::as_str) != Some(role) {
                    bail!("the binding {role:?} exists but grants another role");
                }
                let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
                let mut next = subjects.clone();
                for p in principals {
                    if !subjects.iter().any(|s| same_subject(s, p, ns)) {
                        next.push(subject_value(p));
                    }
                }
                binding["subjects"] = Value::Array(next);
                session.client.put(&path, &binding).await
            }
            Err(e) if error_code(&e) == Some(404) => {
                let binding = json!({
                    "apiVersion": "authorization.openshift.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": role, "namespace": ns},
                    "roleRef": {"name": role},
                    "subjects": principals.iter().map(subject_value).collect::<Vec<_>>(),
                });
                session
                    .client
                    .post(&format!("{BINDINGS}/{ns}/rolebindings"), &binding)
                    .await
            }
            Err(e) => return Err(e),
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if matches!(error_code(&e), Some(409)) => continue,
            Err(e) => return Err(e),
        }
    }
    bail!("the role binding kept changing; try again")
}

async fn remove(session: &Session, ns: &str, role: &str, principals: &[Subject]) -> Result<()> {
    let list = session
        .client
        .get(&format!("{BINDINGS}/{ns}/rolebindings"))
        .await?;
    for binding in list["items"].as_array().cloned().unwrap_or_default() {
        if binding.pointer("/roleRef/name").and_then(Value::as_str) != Some(role) {
            continue;
        }
        let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> = subjects
            .iter()
            .filter(|s| !principals.iter().any(|p| same_subject(s, p, ns)))
            .cloned()
            .collect();
        let user_names: Vec<Value> = binding["userNames"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| {
                !principals.iter().any(|p| match p {
                    Subject::Principal(p) => u.as_str() == Some(p.name.as_str()),
                    Subject::Group(_) => false,
                })
            })
            .collect();
        let unchanged = kept.len() == subjects.len()
            && user_names.len() == binding["userNames"].as_array().map_or(0, Vec::len);
        if unchanged {
            continue;
        }
        let name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = format!("{BINDINGS}/{ns}/rolebindings/{name}");
        if kept.is_empty() && user_names.is_empty() {
            session.client.delete(&path).await?;
        } else {
            let mut next = binding.clone();
            next["subjects"] = Value::Array(kept);
            if next.get("userNames").is_some() {
                next["userNames"] = Value::Array(user_names);
            }
            session.client.put(&path, &next).await?;
        }
    }
    Ok(())
}
