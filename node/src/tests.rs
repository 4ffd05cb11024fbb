//! The node's run of a build, end to end on the in-memory engine and a
//! small in-process API that speaks the node protocol: what is built and
//! reported, and how a cancel, a deadline, a lost lease and a refused
//! report end a build. No Docker engine is needed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::engine::fake::FakeEngine;
use crate::{run_on, NodeConfig};
use podspace_builder::protocol::{BuildReport, Heartbeat, HeartbeatReply, LeaseGrant, PREFIX};

const UID: &str = "uid-web-1";
const OUTPUT: &str = "127.0.0.1:5000/shop/web:v1";

/// The API side, as much as a node needs.
#[derive(Default)]
struct Api {
    grants: Mutex<VecDeque<LeaseGrant>>,
    reports: Mutex<Vec<BuildReport>>,
    log: Mutex<Vec<u8>>,
    reply: Mutex<HeartbeatReply>,
    /// Terminal reports answered 503 before one is taken.
    refuse_terminal: Mutex<usize>,
    refused: Mutex<usize>,
}

impl Api {
    fn terminal(&self) -> Option<BuildReport> {
        let reports = self.reports.lock().unwrap();
        reports.iter().find(|r| r.phase != "Running").cloned()
    }

    fn phases(&self) -> Vec<String> {
        let reports = self.reports.lock().unwrap();
        reports.iter().map(|r| r.phase.clone()).collect()
    }
}

async fn lease(State(api): State<Arc<Api>>) -> Result<Json<LeaseGrant>, StatusCode> {
    let grant = api.grants.lock().unwrap().pop_front();
    match grant {
        Some(g) => Ok(Json(g)),
        None => {
            // A long poll that found nothing.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(StatusCode::NO_CONTENT)
        }
    }
}

async fn heartbeat(State(api): State<Arc<Api>>, Json(_): Json<Heartbeat>) -> Json<HeartbeatReply> {
    Json(api.reply.lock().unwrap().clone())
}

async fn log(State(api): State<Arc<Api>>, body: axum::body::Bytes) -> StatusCode {
    api.log.lock().unwrap().extend_from_slice(&body);
    StatusCode::OK
}

async fn details(State(api): State<Arc<Api>>, Json(report): Json<BuildReport>) -> StatusCode {
    if report.phase != "Running" {
        let mut refuse = api.refuse_terminal.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            *api.refused.lock().unwrap() += 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    api.reports.lock().unwrap().push(report);
    StatusCode::OK
}

fn grant(spec: Value) -> LeaseGrant {
    serde_json::from_value(json!({
        "build": {
            "kind": "Build",
            "apiVersion": "build.openshift.io/v1",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": UID},
            "spec": spec,
        },
        "leaseSeconds": 30,
        "registry": "127.0.0.1:5000",
        "registryToken": "registry-token",
    }))
    .unwrap()
}

fn docker_build(extra: Value) -> Value {
    let mut spec = json!({
        "source": {"type": "Dockerfile", "dockerfile": "FROM scratch\nLABEL tier=web\n"},
        "strategy": {"type": "Docker", "dockerStrategy": {"env": [{"name": "MODE", "value": "prod"}]}},
        "output": {"to": {"kind": "ImageStreamTag", "name": "web:v1"}},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

struct Node {
    api: Arc<Api>,
    engine: Arc<FakeEngine>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _work: tempfile::TempDir,
}

/// A node with one slot on `engine`, offered `grant` once.
async fn start(engine: FakeEngine, grant: LeaseGrant) -> Node {
    let api = Arc::new(Api::default());
    api.grants.lock().unwrap().push_back(grant);
    let base = format!("{PREFIX}/n1");
    let app = Router::new()
        .route(&format!("{base}/lease"), post(lease))
        .route(&format!("{base}/heartbeat"), post(heartbeat))
        .route(&format!("{base}/builds/{{ns}}/{{name}}/log"), post(log))
        .route(
            &format!("{base}/builds/{{ns}}/{{name}}/details"),
            put(details),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let work = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        api: format!("http://{addr}"),
        token: "node-token".into(),
        name: "n1".into(),
        slots: 1,
        network: "host".into(),
        classic_builder: false,
        work_dir: work.path().join("work"),
    };
    let engine = Arc::new(engine);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn({
        let engine = engine.clone();
        async move {
            run_on(engine, config, shutdown).await.unwrap();
        }
    });
    Node {
        api,
        engine,
        stop,
        task,
        _work: work,
    }
}

impl Node {
    /// Waits (up to 20 s) until `what` holds.
    async fn until(&self, what: &str, check: impl Fn(&Node) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finished(&self) -> BuildReport {
        self.until("a terminal report", |n| n.api.terminal().is_some())
            .await;
        self.api.terminal().unwrap()
    }

    /// Stops the node and waits until it has: every build ended, every
    /// report sent.
    async fn shut_down(self) -> (Arc<Api>, Arc<FakeEngine>) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the node stops")
            .unwrap();
        (self.api, self.engine)
    }
}

#[tokio::test]
async fn a_build_is_built_pushed_and_reported_complete() {
    let node = start(FakeEngine::default(), grant(docker_build(json!({})))).await;
    let report = node.finished().await;
    let (api, engine) = node.shut_down().await;
    assert_eq!(api.phases(), ["Running", "Complete"]);
    assert_eq!(
        report.output_docker_image_reference.as_deref(),
        Some(OUTPUT)
    );
    assert_eq!(report.image_digest, Some(FakeEngine::digest_of(OUTPUT)));
    let stages: Vec<String> = report
        .stages
        .as_ref()
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(stages, ["FetchInputs", "PullImages", "Build", "PushImage"]);
    let built = engine.builds();
    assert_eq!(built.len(), 1);
    assert_eq!(built[0].tag, OUTPUT);
    let dockerfile = &built[0].context_dockerfile;
    assert!(dockerfile.starts_with("FROM scratch"), "{dockerfile}");
    assert!(
        dockerfile.contains("MODE=\"prod\""),
        "strategy env: {dockerfile}"
    );
    assert!(
        dockerfile.contains("OPENSHIFT_BUILD_NAME=\"web-1\""),
        "{dockerfile}"
    );
    assert_eq!(built[0].labels["io.openshift.build.name"], "web-1");
    assert_eq!(built[0].labels["io.openshift.build.namespace"], "shop");
    assert_eq!(engine.pushes(), [OUTPUT]);
    let log = String::from_utf8(api.log.lock().unwrap().clone()).unwrap();
    assert!(log.contains("Push successful"), "{log}");
}

#[tokio::test]
async fn a_failing_build_is_reported_failed_with_the_engines_message() {
    let engine = FakeEngine::failing(
        "process \"/bin/sh -c make\" did not complete successfully: exit code: 2",
    );
    let node = start(engine, grant(docker_build(json!({})))).await;
    let report = node.finished().await;
    let (_, engine) = node.shut_down().await;
    assert_eq!(report.phase, "Failed");
    assert_eq!(report.reason, "DockerBuildFailed");
    assert!(
        report.message.contains("exit code: 2"),
        "{}",
        report.message
    );
    assert!(report
        .log_snippet
        .unwrap_or_default()
        .contains("exit code: 2"));
    assert!(engine.pushes().is_empty(), "nothing is pushed");
}

#[tokio::test]
async fn a_cancel_from_the_heartbeat_stops_the_build() {
    let engine = FakeEngine::hanging();
    let node = start(engine, grant(docker_build(json!({})))).await;
    node.until("the engine builds", |n| n.engine.builds().len() == 1)
        .await;
    node.api.reply.lock().unwrap().cancel = vec![UID.into()];
    let report = node.finished().await;
    let (_, engine) = node.shut_down().await;
    assert_eq!(report.phase, "Cancelled");
    assert_eq!(report.reason, "CancelledBuild");
    assert_eq!(engine.abandoned(), 1, "the engine's build was stopped");
    assert!(engine.pushes().is_empty());
}

#[tokio::test]
async fn a_build_past_its_deadline_fails() {
    let engine = FakeEngine::hanging();
    let spec = docker_build(json!({"completionDeadlineSeconds": 1}));
    let node = start(engine, grant(spec)).await;
    let report = node.finished().await;
    let (_, engine) = node.shut_down().await;
    assert_eq!(report.phase, "Failed");
    assert_eq!(report.reason, "DeadlineExceeded");
    assert!(report.message.contains("1s"), "{}", report.message);
    assert_eq!(engine.abandoned(), 1);
}

#[tokio::test]
async fn a_lost_lease_stops_the_build_and_reports_nothing() {
    let engine = FakeEngine::hanging();
    let node = start(engine, grant(docker_build(json!({})))).await;
    node.until("the engine builds", |n| n.engine.builds().len() == 1)
        .await;
    node.api.reply.lock().unwrap().lost = vec![UID.into()];
    node.until("the build is stopped", |n| n.engine.abandoned() == 1)
        .await;
    // Once the node has stopped, every report it would send has been sent.
    let (api, engine) = node.shut_down().await;
    assert_eq!(api.phases(), ["Running"], "no result for a lease it lost");
    assert!(engine.pushes().is_empty());
}

#[tokio::test]
async fn a_refused_report_is_sent_again() {
    let node = start(FakeEngine::default(), grant(docker_build(json!({})))).await;
    *node.api.refuse_terminal.lock().unwrap() = 1;
    let report = node.finished().await;
    let (api, _) = node.shut_down().await;
    assert_eq!(report.phase, "Complete");
    assert_eq!(
        *api.refused.lock().unwrap(),
        1,
        "the first copy was refused"
    );
    assert_eq!(api.phases(), ["Running", "Complete"], "taken once");
}
