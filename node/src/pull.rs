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

use podspace_oci::manifest::{Descriptor, Kind};

use super::engine::ContainerEngine;
use super::image_file::{self, ImageFileError};
use super::images::{image_uses, onbuild_images, pin};
use super::log::BuildLog;
use super::run::Outcome;
use podspace_builder::protocol::LeaseGrant;

/// What an image is read for: a base or builder image (the strategy's pull
/// secret), or the previous output of an incremental build (the push
/// secret, as OpenShift does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Base,
    PreviousOutput,
}

/// The build's credentials for `host`: the builder token for our registry,
/// the pull (or push) secret's entry elsewhere.
fn credentials_for(grant: &LeaseGrant, host: &str, purpose: Purpose) -> Option<(String, String)> {
    if host == grant.registry {
        return Some(("builder".into(), grant.registry_token.clone()));
    }
    let auths = match purpose {
        Purpose::Base => &grant.pull_auths,
        Purpose::PreviousOutput => &grant.push_auths,
    };
    let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    let candidates: Vec<&str> = if hub.contains(&host) {
        hub.to_vec()
    } else {
        vec![host]
    };
    candidates
        .iter()
        .find_map(|h| auths.get(*h))
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

/// An image resolved with the build's credentials.
pub struct Resolved {
    /// `registry/repository@digest`.
    pub reference: String,
    /// The image config (`config.Labels`, `config.Env`, `config.User`…).
    pub config: Value,
    pub layers: Vec<Descriptor>,
}

impl Resolved {
    fn onbuild(&self) -> Vec<String> {
        self.config
            .pointer("/config/OnBuild")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    }
}

/// Resolves `image` to a digest with the build's own credentials; an image
/// the build may not pull is `PullBuilderImageFailed`.
pub async fn resolve(
    engine: &dyn ContainerEngine,
    grant: &LeaseGrant,
    image: &str,
    purpose: Purpose,
) -> Result<Resolved, Outcome> {
    let r = RemoteRef::parse_docker(image).map_err(|e| refused(image, e))?;
    let insecure = engine.insecure_registry(&r.registry).await;
    let auth = credentials_for(grant, &r.registry, purpose);
    let imported = Client::new()
        .import(&r, insecure, auth.as_ref())
        .await
        .map_err(|e| import_refused(image, e))?;
    let layers = match imported.manifest.kind {
        Kind::Image { layers, .. } => layers,
        Kind::Index { .. } => Vec::new(),
    };
    Ok(Resolved {
        reference: imported.reference,
        config: imported.config,
        layers,
    })
}

/// The file `path` of a resolved image, read from the registry with the
/// same credentials (see `image_file.rs`).
pub async fn read_file(
    engine: &dyn ContainerEngine,
    grant: &LeaseGrant,
    image: &Resolved,
    purpose: Purpose,
    path: &str,
    scratch: &Path,
) -> Result<Option<Vec<u8>>, ImageFileError> {
    let r = RemoteRef::parse_docker(&image.reference)?;
    let insecure = engine.insecure_registry(&r.registry).await;
    let auth = credentials_for(grant, &r.registry, purpose);
    image_file::read(
        &image.reference,
        &image.layers,
        insecure,
        auth.as_ref(),
        path,
        scratch,
        grant.max_context_bytes,
    )
    .await
}

/// Checks every image the Dockerfile at `dockerfile` reads and rewrites it
/// to their digests. Returns the pinned references (for the log and the
/// build's provenance).
pub async fn pin_base_images(
    dockerfile: &Path,
    build_args: &HashMap<String, String>,
    engine: &dyn ContainerEngine,
    grant: &LeaseGrant,
    log: &BuildLog,
) -> Result<Vec<String>, Outcome> {
    let text = tokio::fs::read_to_string(dockerfile)
        .await
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    let uses = image_uses(&text, build_args)
        .map_err(|e| Outcome::Failed("DockerBuildFailed", e.to_string()))?;
    let mut pinned: HashMap<String, String> = HashMap::new();
    for u in &uses {
        if pinned.contains_key(&u.image) {
            continue;
        }
        let resolved = resolve(engine, grant, &u.image, Purpose::Base).await?;
        // ONBUILD triggers run in this build: what they read is checked
        // with the same credentials (they cannot be pinned, but the check
        // has already said this build may pull them).
        for image in onbuild_images(&resolved.onbuild()) {
            resolve(engine, grant, &image, Purpose::Base).await?;
        }
        log.line(&format!(
            "Using image {} as {}",
            u.image, resolved.reference
        ));
        pinned.insert(u.image.clone(), resolved.reference);
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
