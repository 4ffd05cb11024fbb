//! First start: the `admin` user, bound to cluster-admin.

use anyhow::Context;
use podspace_api::auth::Authenticator;
use podspace_api::kinds::by_kind;
use podspace_api::store::{Store, StoreError};
use podspace_api::Object;
use serde_json::json;

pub const ADMIN: &str = "admin";

pub async fn admin(
    store: &Store,
    authn: &Authenticator,
    password: Option<&str>,
) -> anyhow::Result<()> {
    let user = by_kind("User").context("User kind")?;
    let crb = by_kind("ClusterRoleBinding").context("ClusterRoleBinding kind")?;
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
