//! Fetching a build's inputs into its work directory: a git checkout, the
//! uploaded binary input, or nothing (an inline Dockerfile). Strategy
//! independent: Docker and (later) S2I start from the same `Inputs`.

use std::path::{Path, PathBuf};

use podspace_api::model::build::SourceRevision;

use super::client::NodeClient;
use super::log::BuildLog;
use super::run::{BuildMeta, Outcome};
use super::source::{self, GitSource};
use podspace_builder::protocol::LeaseGrant;

pub struct Inputs {
    /// The fetched source tree (may be empty).
    pub src: PathBuf,
    /// `spec.revision` as fetched (git) or as given (binary input).
    pub revision: Option<SourceRevision>,
    /// The git URI without credentials (labels, env); empty without git.
    pub source_location: String,
    /// `source.git.ref` as configured.
    pub git_ref: String,
}

pub async fn fetch(
    meta: &BuildMeta<'_>,
    grant: &LeaseGrant,
    client: &NodeClient,
    work: &Path,
    log: &BuildLog,
) -> Result<Inputs, Outcome> {
    let spec = meta.spec;
    let src = work.join("src");
    std::fs::create_dir_all(&src)
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    let git = spec.git();
    let git_uri = git.map(|g| g.uri.clone()).unwrap_or_default();
    let mut inputs = Inputs {
        src: src.clone(),
        revision: None,
        source_location: source::display_uri(&git_uri),
        git_ref: git.and_then(|g| g.reference.clone()).unwrap_or_default(),
    };
    if let Some(binary) = spec.source.as_ref().and_then(|s| s.binary.as_ref()) {
        if !grant.has_input {
            return Err(Outcome::Failed(
                "FetchSourceFailed",
                "the build has no binary input: start it with --from-dir, --from-file, --from-archive or --from-repo".into(),
            ));
        }
        let file = work.join("input");
        match client.fetch_input(meta.namespace, meta.name, &file).await {
            Ok(n) => log.line(&format!("Receiving binary input ({n} bytes) ...")),
            Err(e) => return Err(Outcome::Error("FetchSourceFailed", e.to_string())),
        }
        let as_file = binary.as_file.clone().unwrap_or_default();
        let limits = source::ContextLimits::of(grant);
        let unpacked = tokio::task::spawn_blocking(move || {
            source::unpack_binary(
                &file,
                &src,
                (!as_file.is_empty()).then_some(as_file.as_str()),
                limits,
            )
        })
        .await;
        match unpacked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Outcome::Failed("FetchSourceFailed", e.to_string())),
            Err(e) => return Err(Outcome::Error("FetchSourceFailed", e.to_string())),
        }
        inputs.revision = spec.revision.clone();
    } else if !git_uri.is_empty() {
        let commit = spec
            .revision
            .as_ref()
            .map(|r| r.commit().to_string())
            .unwrap_or_default();
        let auth = grant.git_auth.clone();
        let gref = inputs.git_ref.clone();
        let uri = git_uri.clone();
        let log2 = log.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            source::checkout(
                &GitSource {
                    uri: &uri,
                    git_ref: &gref,
                    commit: (!commit.is_empty()).then_some(commit.as_str()),
                    auth: auth.as_ref(),
                },
                &src,
                &|l| log2.line(l),
            )
        })
        .await;
        match fetched {
            Ok(Ok(revision)) => inputs.revision = Some(revision),
            Ok(Err(e)) => {
                return Err(Outcome::Failed(
                    "FetchSourceFailed",
                    format!(
                        "Failed to fetch the input source from {}: {e}",
                        inputs.source_location
                    ),
                ))
            }
            Err(e) => return Err(Outcome::Error("FetchSourceFailed", e.to_string())),
        }
    } else if spec.inline_dockerfile().is_none() {
        return Err(Outcome::Failed(
            "FetchSourceFailed",
            "the build has no source: no git repository, binary input or Dockerfile".into(),
        ));
    }
    Ok(inputs)
}
