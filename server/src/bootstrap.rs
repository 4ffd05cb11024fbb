//! First start: the `admin` user, bound to cluster-admin.

use anyhow::Context;
use podspace_api::auth::Authenticator;
use podspace_api::store::{Store, StoreError};
use podspace_api::Object;
use serde_json::json;

pub const ADMIN: &str = "admin";
/// The build node inside `podspace serve`.
pub const EMBEDDED_NODE: &str = "embedded";
const EMBEDDED_NODE_USER: &str = "system:node:embedded";

/// The embedded build node's identity: a user bound to the build-node
/// cluster role, with a fresh token each start (it talks to the API over
/// loopback like any other node).
pub async fn embedded_node(store: &Store, authn: &Authenticator) -> anyhow::Result<String> {
    let crb = &podspace_api::kinds::CLUSTER_ROLE_BINDING;
    let binding = Object::new("ClusterRoleBinding", "", "system:build-nodes")
        .with(
            "roleRef",
            json!({"name": podspace_api::auth::BUILD_NODE_ROLE}),
        )
        .with(
            "subjects",
            json!([{"kind": "User", "name": EMBEDDED_NODE_USER}]),
        );
    match store.create(crb, binding).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e).context("binding the embedded build node"),
    }
    let issued = authn
        .issue_token(
            EMBEDDED_NODE_USER,
            std::time::Duration::from_secs(30 * 24 * 3600),
            "embedded build node",
        )
        .await
        .context("issuing the embedded build node's token")?;
    Ok(issued.token)
}

pub async fn admin(
    store: &Store,
    authn: &Authenticator,
    password: Option<&str>,
) -> anyhow::Result<()> {
    let user = &podspace_api::kinds::USER;
    let crb = &podspace_api::kinds::CLUSTER_ROLE_BINDING;
    let first_start = !store.any_credentials().await?;
    if first_start {
        let objs = vec![
            (user, Object::new("User", "", ADMIN)),
            (
                crb,
                Object::new("ClusterRoleBinding", "", "cluster-admins")
                    .with("roleRef", json!({"name": "cluster-admin"}))
                    .with("subjects", json!([{"kind": "User", "name": ADMIN}])),
            ),
        ];
        match store.create_many(objs).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).context("creating the admin user"),
        }
        let owner = podspace_api::auth::Principal::user(ADMIN);
        let shared = podspace_api::projects::shared_project(&owner)
            .map_err(|s| anyhow::anyhow!(s.message))?;
        match store.create_many(shared).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).context("creating the shared project"),
        }
    }
    match (password, first_start) {
        (Some(pw), _) => {
            authn
                .set_password(ADMIN, pw)
                .await
                .context("setting the admin password")?;
        }
        (None, true) => {
            let pw = generate_password();
            authn
                .set_password(ADMIN, &pw)
                .await
                .context("setting the admin password")?;
            // Printed once to the terminal, never to the structured log. A
            // closed stdout must not take the server down.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "Created user \"{ADMIN}\" (cluster-admin) with one-time password: {pw}"
            );
            let _ = writeln!(
                out,
                "Log in with: psc login http://<listen address> -u {ADMIN} -p '{pw}'"
            );
            let _ = out.flush();
        }
        (None, false) => {}
    }
    Ok(())
}

fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
