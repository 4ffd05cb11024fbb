//! Base images are pulled with the build's own credentials, never taken
//! from the engine's cache on a name alone: before the engine runs, every
//! image the Dockerfile reads (`images.rs`) is resolved over the registry
//! protocol with the project's builder token (our registry) or the
//! strategy's `pullSecret` (elsewhere), and the Dockerfile is rewritten to
//! the digests it resolved to. An image the build may not pull fails it
//! (`PullBuilderImageFailed`) before anything runs, so the engine's copy of
//! another project's image — or a cached layer built on it — is only ever
//! reused by a build that could have pulled it itself.

use std::collections::HashMap;
use std::path::Path;

use podspace_imagestreams::remote::{Client, ImportError, RemoteRef};
use serde_json::Value;

use super::engine::DockerEngine;
use super::images::{image_uses, onbuild_images, pin};
use super::log::BuildLog;
use super::protocol::LeaseGrant;
use super::run::Outcome;

/// The build's credentials for `host`: the builder token for our registry,
/// the pull secret's entry elsewhere.
fn credentials_for(grant: &LeaseGrant, host: &str) -> Option<(String, String)> {
    if host == grant.registry {
        return Some(("builder".into(), grant.registry_token.clone()));
    }
    let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    let candidates: Vec<&str> = if hub.contains(&host) {
        hub.to_vec()
    } else {
        vec![host]
    };
    candidates
        .iter()
        .find_map(|h| grant.pull_auths.get(*h))
        .map(|a| (a.username.clone(), a.password.clone()))
}

fn refused(image: &str, why: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(
        "PullBuilderImageFailed",
        format!("cannot pull image {image:?} with this build's credentials: {why}"),
    )
}

fn import_refused(image: &str, e: ImportError) -> Outcome {
    match e {
        // The same words for "no such image" and "not yours": a build must
        // not learn which other projects' images exist.
        ImportError::Status {
            status: status @ (401 | 403 | 404),
            ..
        } => refused(
            image,
            format!("not found or access denied (the registry answered {status})"),
        ),
        e => refused(image, e),
    }
}

/// Resolves `image` to `registry/repository@digest`, with the ONBUILD
/// triggers of its config.
async fn resolve(
    client: &Client,
    engine: &DockerEngine,
    grant: &LeaseGrant,
    image: &str,
) -> Result<(String, Vec<String>), Outcome> {
    let r = RemoteRef::parse_docker(image).map_err(|e| refused(image, e))?;
    let insecure = engine.insecure_registry(&r.registry).await;
    let auth = credentials_for(grant, &r.registry);
    let imported = client
        .import(&r, insecure, auth.as_ref())
        .await
        .map_err(|e| import_refused(image, e))?;
    let onbuild = imported
        .config
        .pointer("/config/OnBuild")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    Ok((imported.reference, onbuild))
}

/// Checks every image the Dockerfile at `dockerfile` reads and rewrites it
/// to their digests. Returns the pinned references (for the log and the
/// build's provenance).
pub async fn pin_base_images(
    dockerfile: &Path,
    build_args: &HashMap<String, String>,
    engine: &DockerEngine,
    grant: &LeaseGrant,
    log: &BuildLog,
) -> Result<Vec<String>, Outcome> {
    let text = tokio::fs::read_to_string(dockerfile)
        .await
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    let uses = image_uses(&text, build_args)
        .map_err(|e| Outcome::Failed("DockerBuildFailed", e.to_string()))?;
    let client = Client::new();
    let mut pinned: HashMap<String, String> = HashMap::new();
    for u in &uses {
        if pinned.contains_key(&u.image) {
            continue;
        }
        let (reference, onbuild) = resolve(&client, engine, grant, &u.image).await?;
        // ONBUILD triggers run in this build: what they read is checked
        // with the same credentials (they cannot be pinned, but the check
        // has already said this build may pull them).
        for image in onbuild_images(&onbuild) {
            resolve(&client, engine, grant, &image).await?;
        }
        log.line(&format!("Using image {} as {reference}", u.image));
        pinned.insert(u.image.clone(), reference);
    }
    if !uses.is_empty() {
        tokio::fs::write(dockerfile, pin(&text, &uses, &pinned))
            .await
            .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    }
    let mut out: Vec<String> = pinned.into_values().collect();
    out.sort();
    Ok(out)
}
