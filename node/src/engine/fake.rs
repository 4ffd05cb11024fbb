//! An in-memory container engine for the node's tests: it records what it
//! was asked, builds by reading the context it was sent, and can be told to
//! fail or to run until the build is stopped.

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::auth::DockerCredentials;
use podspace_oci::digest::Digest;

use super::{BuildSpec, ContainerEngine, EngineError};
use crate::log::BuildLog;

/// What one build asked of the engine.
#[derive(Debug, Clone)]
pub struct Built {
    pub tag: String,
    pub dockerfile: String,
    pub labels: HashMap<String, String>,
    /// The Dockerfile's text as found in the context tar.
    pub context_dockerfile: String,
}

#[derive(Default)]
pub struct FakeEngine {
    /// Builds fail with this message.
    fail_build: Option<String>,
    /// Builds never finish on their own (they end when the run drops them).
    hang: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    builds: Vec<Built>,
    /// Builds that were dropped before they finished.
    abandoned: usize,
    pushes: Vec<String>,
    removed: Vec<String>,
    labels: HashMap<String, HashMap<String, String>>,
}

/// Counts a build dropped mid-way (stopped by the run's `select!`).
struct Running<'a> {
    engine: &'a FakeEngine,
    finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.engine.state().abandoned += 1;
        }
    }
}

impl FakeEngine {
    /// An engine whose builds fail with `message`.
    pub fn failing(message: &str) -> FakeEngine {
        FakeEngine {
            fail_build: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// An engine whose builds run until they are stopped.
    pub fn hanging() -> FakeEngine {
        FakeEngine {
            hang: true,
            ..Default::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn builds(&self) -> Vec<Built> {
        self.state().builds.clone()
    }

    pub fn abandoned(&self) -> usize {
        self.state().abandoned
    }

    pub fn pushes(&self) -> Vec<String> {
        self.state().pushes.clone()
    }

    pub fn removed(&self) -> Vec<String> {
        self.state().removed.clone()
    }

    /// The digest a push of `reference` gets.
    pub fn digest_of(reference: &str) -> String {
        Digest::sha256_of(reference.as_bytes()).to_string()
    }
}

/// The Dockerfile named `name` inside the context tar.
fn dockerfile_in(context: &std::path::Path, name: &str) -> Result<String, EngineError> {
    let file = std::fs::File::open(context)?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_string_lossy().trim_start_matches("./") == name {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)?;
            return Ok(text);
        }
    }
    Err(EngineError::Build(format!(
        "no {name} in the build context"
    )))
}

#[async_trait::async_trait]
impl ContainerEngine for FakeEngine {
    fn buildkit(&self) -> bool {
        true
    }

    async fn build(&self, spec: BuildSpec<'_>, log: &BuildLog) -> Result<(), EngineError> {
        let mut running = Running {
            engine: self,
            finished: false,
        };
        let context_dockerfile = dockerfile_in(spec.context, &spec.dockerfile)?;
        self.state().builds.push(Built {
            tag: spec.tag.clone(),
            dockerfile: spec.dockerfile.clone(),
            labels: spec.labels.clone(),
            context_dockerfile,
        });
        log.line("#1 [internal] load build definition from Dockerfile");
        if self.hang {
            std::future::pending::<()>().await;
        }
        running.finished = true;
        if let Some(message) = &self.fail_build {
            log.line(&format!("#2 ERROR: {message}"));
            return Err(EngineError::Build(message.clone()));
        }
        self.state().labels.insert(spec.tag.clone(), spec.labels);
        Ok(())
    }

    async fn push(
        &self,
        image: &str,
        tag: &str,
        _credentials: Option<DockerCredentials>,
        log: &BuildLog,
    ) -> Result<String, EngineError> {
        let reference = format!("{image}:{tag}");
        log.line(&format!("{tag}: digest: {}", Self::digest_of(&reference)));
        self.state().pushes.push(reference.clone());
        Ok(Self::digest_of(&reference))
    }

    async fn insecure_registry(&self, _host: &str) -> bool {
        true
    }

    async fn read_file(
        &self,
        _image: &str,
        _path: &str,
        _max: u64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(None)
    }

    async fn add_labels(
        &self,
        image: &str,
        labels: &[(String, String)],
        tag: &str,
    ) -> Result<(), EngineError> {
        let mut state = self.state();
        let mut all = state.labels.get(image).cloned().unwrap_or_default();
        all.extend(labels.iter().cloned());
        state.labels.insert(tag.to_string(), all);
        Ok(())
    }

    async fn labels(&self, image: &str) -> Result<HashMap<String, String>, EngineError> {
        self.state()
            .labels
            .get(image)
            .cloned()
            .ok_or_else(|| EngineError::Build(format!("no such image: {image}")))
    }

    async fn remove_image(&self, image: &str) {
        self.state().removed.push(image.to_string());
    }
}
