//! The build node's container engine, behind one small trait: the Docker
//! Engine (`docker.rs`, bollard) in production, an in-memory engine
//! (`fake.rs`) in the node's own tests, so the build run (cancel,
//! deadline, lease loss, reports) is tested without a Docker engine.

mod docker;
#[cfg(test)]
pub mod fake;

use std::collections::HashMap;
use std::path::Path;

use bollard::auth::DockerCredentials;

pub use docker::DockerEngine;

use crate::log::BuildLog;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the container engine: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Build(String),
    #[error("{0}")]
    Push(String),
    #[error("reading the build context: {0}")]
    Context(#[from] std::io::Error),
}

/// What to build and where the result goes.
pub struct BuildSpec<'a> {
    /// A tar of the build context.
    pub context: &'a Path,
    pub dockerfile: String,
    pub tag: String,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub no_cache: bool,
    pub force_pull: bool,
    /// `host` or `none`: the engine here has no bridge network.
    pub network: String,
    /// Registry host → credentials (for pulling the base image).
    pub credentials: HashMap<String, DockerCredentials>,
}

/// What the node asks of a container engine.
#[async_trait::async_trait]
pub trait ContainerEngine: Send + Sync + 'static {
    /// Whether builds run on BuildKit (build secrets need it).
    fn buildkit(&self) -> bool;
    /// Builds `spec`; the engine's own error message on failure.
    async fn build(&self, spec: BuildSpec<'_>, log: &BuildLog) -> Result<(), EngineError>;
    /// Pushes `image:tag`; returns the manifest digest the registry gave it.
    async fn push(
        &self,
        image: &str,
        tag: &str,
        credentials: Option<DockerCredentials>,
        log: &BuildLog,
    ) -> Result<String, EngineError>;
    /// Whether the engine speaks plain HTTP to `host`.
    async fn insecure_registry(&self, host: &str) -> bool;
    /// The file `path` of the local `image` (at most `max` bytes), or
    /// `None` when it has none; the image is never run.
    async fn read_file(
        &self,
        image: &str,
        path: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, EngineError>;
    /// Sets `labels` on `image`, adding no layer, and tags the result `tag`.
    async fn add_labels(
        &self,
        image: &str,
        labels: &[(String, String)],
        tag: &str,
    ) -> Result<(), EngineError>;
    /// The labels of a local image.
    async fn labels(&self, image: &str) -> Result<HashMap<String, String>, EngineError>;
    /// Removes a local image the build made (best effort).
    async fn remove_image(&self, image: &str);
}
