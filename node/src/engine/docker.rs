//! A Docker Engine reached through its API with bollard. Builds use
//! BuildKit (a session serves the registry credentials to it) unless the
//! engine has none; then the classic builder. Progress goes to the build
//! log as the engine reports it.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, PushImageOptions};
use bollard::Docker;
use futures_util::StreamExt;

use podspace_s2i::dockerfile::quote;

use super::{BuildSpec, ContainerEngine, EngineError};
use crate::log::BuildLog;

#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    buildkit: bool,
}

impl DockerEngine {
    /// Connects as the docker CLI would (`DOCKER_HOST` or the local
    /// socket) and negotiates the API version.
    pub async fn connect(force_classic: bool) -> Result<DockerEngine, EngineError> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| EngineError::Unavailable(e.to_string()))?
            .negotiate_version()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let version = docker
            .version()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        // BuildKit is part of dockerd on Linux since API 1.39 (Docker 18.09).
        let api = version.api_version.unwrap_or_default();
        let buildkit =
            !force_classic && version.os.as_deref() == Some("linux") && api_at_least(&api, 1, 39);
        tracing::info!(
            engine = version.version.as_deref().unwrap_or("?"),
            api = %api,
            buildkit,
            "container engine"
        );
        Ok(DockerEngine { docker, buildkit })
    }
}

#[async_trait::async_trait]
impl ContainerEngine for DockerEngine {
    fn buildkit(&self) -> bool {
        self.buildkit
    }

    /// Builds `spec`; the engine's own error message on failure.
    async fn build(&self, spec: BuildSpec<'_>, log: &BuildLog) -> Result<(), EngineError> {
        let options = BuildImageOptions {
            dockerfile: spec.dockerfile.clone(),
            t: Some(spec.tag.clone()),
            nocache: spec.no_cache,
            pull: spec.force_pull.then(|| "true".to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args.clone()),
            labels: Some(spec.labels.clone()),
            networkmode: Some(spec.network.clone()),
            version: if self.buildkit {
                BuilderVersion::BuilderBuildKit
            } else {
                BuilderVersion::BuilderV1
            },
            session: self
                .buildkit
                .then(|| format!("podspace-{}", uuid::Uuid::new_v4().simple())),
            ..Default::default()
        };
        let file = tokio::fs::File::open(spec.context).await?;
        let body = tokio_util::io::ReaderStream::new(file).filter_map(|chunk| async move {
            // A read error ends the stream early; the engine then reports
            // the truncated context as the build's error.
            chunk.ok()
        });
        let mut stream = self.docker.build_image(
            options,
            Some(spec.credentials),
            Some(bollard::body_stream(body)),
        );
        let mut progress = BuildKitProgress::default();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        log.write(text.as_bytes());
                    }
                    if let Some(BuildInfoAux::BuildKit(status)) = info.aux {
                        progress.render(&status, log);
                    }
                    if let (Some(status), None) = (info.status, info.id) {
                        if !matches!(status.as_str(), "Preparing" | "Waiting" | "Pushing") {
                            log.line(&status);
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    log.line(&format!("error: {error}"));
                    return Err(EngineError::Build(error));
                }
                Err(e) => {
                    let msg = e.to_string();
                    log.line(&format!("error: {msg}"));
                    return Err(EngineError::Build(msg));
                }
            }
        }
        Ok(())
    }

    /// Pushes `image:tag`; returns the manifest digest the registry gave it.
    async fn push(
        &self,
        image: &str,
        tag: &str,
        credentials: Option<DockerCredentials>,
        log: &BuildLog,
    ) -> Result<String, EngineError> {
        let mut stream = self.docker.push_image(
            image,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            credentials,
        );
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::Push(e.to_string()))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                log.line(&format!("error: {err}"));
                return Err(EngineError::Push(err));
            }
            let Some(status) = info.status else { continue };
            // Per-layer byte counts would flood the log: only state changes.
            if info.progress_detail.is_some_and(|p| p.current.is_some()) {
                continue;
            }
            if let Some(d) = status
                .split_whitespace()
                .find(|w| w.starts_with("sha256:") && w.len() == 71)
            {
                digest = Some(d.to_string());
            }
            if !matches!(status.as_str(), "Preparing" | "Waiting" | "Pushing") {
                log.line(&status);
            }
        }
        digest.ok_or_else(|| EngineError::Push("the registry returned no digest".into()))
    }

    /// Whether the engine speaks plain HTTP to `host` (its
    /// `--insecure-registry` settings: names, or CIDRs for IP hosts).
    async fn insecure_registry(&self, host: &str) -> bool {
        let Ok(info) = self.docker.info().await else {
            return false;
        };
        let Some(config) = info.registry_config else {
            return false;
        };
        let named_insecure = config
            .index_configs
            .unwrap_or_default()
            .get(host)
            .is_some_and(|i| i.secure == Some(false));
        let ip = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>();
        let in_cidr = ip.is_ok_and(|ip| {
            config
                .insecure_registry_cidrs
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.parse::<ipnet::IpNet>().ok())
                .any(|net| net.contains(&ip))
        });
        named_insecure || in_cidr
    }

    /// The file `path` of the built `image` (at most `max` bytes), or
    /// `None` when it has none; the image is never run.
    async fn read_file(
        &self,
        image: &str,
        path: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let id = self.create_stopped(image).await?;
        let read = self.read_from_container(&id, path, max).await;
        self.remove_container(&id).await;
        read
    }

    /// Sets `labels` on `image` (a commit of a never-started container,
    /// which adds no layer) and tags the result `tag`.
    async fn add_labels(
        &self,
        image: &str,
        labels: &[(String, String)],
        tag: &str,
    ) -> Result<(), EngineError> {
        let id = self.create_stopped(image).await?;
        let (repo, tag) = match tag.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (tag, "latest"),
        };
        let changes: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("LABEL {}={}", quote(k), quote(v)))
            .collect();
        let options = bollard::query_parameters::CommitContainerOptions {
            container: Some(id.clone()),
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            changes: Some(changes.join("\n")),
            ..Default::default()
        };
        let committed = self
            .docker
            .commit_container(options, bollard::models::ContainerConfig::default())
            .await;
        self.remove_container(&id).await;
        committed
            .map(|_| ())
            .map_err(|e| EngineError::Build(format!("labelling the image: {e}")))
    }

    /// The labels of a local image.
    async fn labels(&self, image: &str) -> Result<HashMap<String, String>, EngineError> {
        let inspect = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| EngineError::Build(format!("inspecting {image}: {e}")))?;
        Ok(inspect.config.and_then(|c| c.labels).unwrap_or_default())
    }

    async fn remove_image(&self, image: &str) {
        if let Err(e) = self
            .docker
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            tracing::debug!(image, error = %e, "removing the build's local image");
        }
    }
}

impl DockerEngine {
    /// A container of `image` that is never started: its files can be
    /// read and it can be committed. Removed by [`DockerEngine::remove_container`].
    async fn create_stopped(&self, image: &str) -> Result<String, EngineError> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            network_disabled: Some(true),
            ..Default::default()
        };
        self.docker
            .create_container(None, body)
            .await
            .map(|c| c.id)
            .map_err(|e| EngineError::Build(format!("creating a container of {image}: {e}")))
    }

    async fn remove_container(&self, id: &str) {
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = id, error = %e, "removing a build's container");
        }
    }

    async fn read_from_container(
        &self,
        id: &str,
        path: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let options = bollard::query_parameters::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    tar.extend_from_slice(&bytes);
                    // The archive of one file: its size, a header, padding.
                    if tar.len() as u64 > max + 64 * 1024 {
                        return Err(EngineError::Build(format!(
                            "{path} in the image is larger than {max} bytes"
                        )));
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => return Err(EngineError::Build(format!("reading {path}: {e}"))),
            }
        }
        let mut archive = tar::Archive::new(&tar[..]);
        let entries = archive.entries().map_err(EngineError::Context)?;
        for entry in entries {
            let mut entry = entry.map_err(EngineError::Context)?;
            if entry.header().entry_type().is_file() {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, max), &mut bytes)
                    .map_err(EngineError::Context)?;
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }
}

fn api_at_least(v: &str, major: u64, minor: u64) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Renders BuildKit's status stream like `docker build --progress=plain`:
/// `#N name`, its output lines, then `#N DONE` / `#N CACHED` / `#N ERROR`.
#[derive(Default)]
struct BuildKitProgress {
    numbers: HashMap<String, usize>,
    announced: std::collections::HashSet<String>,
    done: std::collections::HashSet<String>,
}

impl BuildKitProgress {
    fn number(&mut self, digest: &str) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(digest.to_string()).or_insert(next)
    }

    fn render(&mut self, status: &bollard::moby::buildkit::v1::StatusResponse, log: &BuildLog) {
        for v in &status.vertexes {
            let n = self.number(&v.digest);
            if (v.started.is_some() || v.cached) && self.announced.insert(v.digest.clone()) {
                log.line(&format!("#{n} {}", v.name));
            }
            if self.done.contains(&v.digest) {
                continue;
            }
            if !v.error.is_empty() {
                log.line(&format!("#{n} ERROR: {}", v.error));
                self.done.insert(v.digest.clone());
            } else if v.cached {
                log.line(&format!("#{n} CACHED"));
                self.done.insert(v.digest.clone());
            } else if let (Some(s), Some(c)) = (&v.started, &v.completed) {
                let secs = (c.seconds - s.seconds) as f64 + f64::from(c.nanos - s.nanos) / 1e9;
                log.line(&format!("#{n} DONE {secs:.1}s"));
                self.done.insert(v.digest.clone());
            }
        }
        for l in &status.logs {
            let n = self.number(&l.vertex);
            for line in String::from_utf8_lossy(&l.msg).lines() {
                log.line(&format!("#{n} {line}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_versions_compare() {
        assert!(super::api_at_least("1.41", 1, 39));
        assert!(!super::api_at_least("1.38", 1, 39));
        assert!(super::api_at_least("2.0", 1, 39));
    }
}
