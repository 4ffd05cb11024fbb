//! The build node: leases builds from the API, runs them on its container
//! engine, streams their logs back and reports the result. The node inside
//! `podspace serve` and a `podspace node` on another machine are the same
//! code, talking to the API over HTTP.

mod build_inputs;
pub mod client;
pub mod dockerfile;
pub mod engine;
mod image_file;
mod images;
mod inputs;
pub mod log;
mod pull;
mod run;
pub mod source;
mod source_strategy;
mod strategy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use client::NodeClient;
use engine::{ContainerEngine, DockerEngine};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub api: String,
    pub token: String,
    pub name: String,
    /// Builds run at once.
    pub slots: usize,
    /// `host` or `none`.
    pub network: String,
    /// Use the classic builder even when the engine has BuildKit.
    pub classic_builder: bool,
    /// Where sources are checked out (a temporary directory per build).
    pub work_dir: std::path::PathBuf,
}

/// Builds running here: uid → how to stop them.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<HashMap<String, run::Stop>>>);

impl Running {
    fn add(&self, uid: &str) -> run::Stop {
        let stop = run::Stop::default();
        if let Ok(mut m) = self.0.lock() {
            m.insert(uid.to_string(), stop.clone());
        }
        stop
    }
    fn remove(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(uid);
        }
    }
    fn uids(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    fn stop(&self, uid: &str, why: run::StopReason) {
        if let Ok(m) = self.0.lock() {
            if let Some(stop) = m.get(uid) {
                stop.signal(why);
            }
        }
    }
}

/// Runs the node until `shutdown`.
pub async fn run(config: NodeConfig, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
    // An engine that is not up yet (or restarting) is waited for.
    let mut warned = false;
    let engine = loop {
        match DockerEngine::connect(config.classic_builder).await {
            Ok(e) => break e,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "no container engine yet; the build node waits for one");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = podspace_api::store::stopped(&mut shutdown) => return Ok(()),
                }
            }
        }
    };
    run_on(Arc::new(engine), config, shutdown).await
}

/// Runs the node on `engine` until `shutdown`.
pub async fn run_on(
    engine: Arc<dyn ContainerEngine>,
    config: NodeConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let client = NodeClient::new(&config.api, &config.token, &config.name)?;
    // Builds' sources and inputs are tenants' data: the work directory is
    // the node's alone (each build's directory inside is 0700 too).
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.work_dir)?;
        std::fs::set_permissions(&config.work_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let running = Running::default();
    let config = Arc::new(config);
    tracing::info!(node = %config.name, slots = config.slots, api = %config.api, "build node started");
    // The heartbeat outlives the slots: a slot stops taking builds at
    // shutdown but finishes the one it runs, which needs its lease renewed.
    let (slots_done, heartbeat_stop) = watch::channel(false);
    let beat = tokio::spawn(heartbeat(client.clone(), running.clone(), heartbeat_stop));
    let mut slots = Vec::new();
    for slot in 0..config.slots.max(1) {
        slots.push(tokio::spawn(slot_loop(
            slot,
            client.clone(),
            engine.clone(),
            config.clone(),
            running.clone(),
            shutdown.clone(),
        )));
    }
    for t in slots {
        let _ = t.await;
    }
    let _ = slots_done.send(true);
    let _ = beat.await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("the node's work directory: {0}")]
    Io(#[from] std::io::Error),
}

/// How often leases are renewed; a third of the shortest lease the API
/// grants, and often enough that a cancel stops a build within seconds.
const HEARTBEAT: Duration = Duration::from_secs(1);
const LEASE_WAIT: Duration = Duration::from_secs(20);

/// Renews the leases of the running builds until every slot has stopped.
async fn heartbeat(client: NodeClient, running: Running, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = podspace_api::store::stopped(&mut stop) => return,
        }
        let uids = running.uids();
        if uids.is_empty() {
            continue;
        }
        match client.heartbeat(uids).await {
            Ok(reply) => {
                for uid in reply.cancel {
                    running.stop(&uid, run::StopReason::Cancelled);
                }
                for uid in reply.lost {
                    running.stop(&uid, run::StopReason::Lost);
                }
            }
            Err(e) => tracing::warn!(error = %e, "build node heartbeat failed"),
        }
    }
}

async fn slot_loop(
    slot: usize,
    client: NodeClient,
    engine: Arc<dyn ContainerEngine>,
    config: Arc<NodeConfig>,
    running: Running,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let grant = tokio::select! {
            g = client.lease(LEASE_WAIT) => g,
            _ = podspace_api::store::stopped(&mut shutdown) => return,
        };
        match grant {
            Ok(Some(grant)) => {
                run::build(grant, &client, engine.as_ref(), &config, &running, slot).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, slot, "leasing a build failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = podspace_api::store::stopped(&mut shutdown) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
