//! The API side of the build node protocol (`podspace_node::
//! protocol`): leases, heartbeats, log chunks, reports and binary input.
//! Only principals bound to the `system:build-node` cluster role (or
//! cluster-admins) may speak it, and every call about a build is refused
//! unless the calling node holds that build's lease.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use podspace_api::auth::{Principal, BUILD_NODE_ROLE};
use podspace_api::model::build::{BuildStatusOutput, BuildStatusOutputTo};
use podspace_api::model::{Build, ConfigMap, Secret};
use podspace_api::selector::LabelSelector;
use podspace_api::store::UpdateScope;
use podspace_api::{Reason, Status};
use podspace_builder::bookkeeping::BuildLease;
use podspace_builder::phase;
use podspace_node::protocol::{
    BuildReport, GitAuth, Heartbeat, HeartbeatReply, InputFiles, InputKind, LeaseGrant,
    LeaseRequest, RegistryAuth,
};

use crate::app::AppState;
use crate::http::{json_response, read_body, ApiError, ApiResult, Caller};

/// How long binary input may take to arrive before its build is given up.
const BINARY_INPUT_TIMEOUT: i64 = 300;
const MAX_LOG_CHUNK: usize = 4 << 20;
/// A build's stored log stops growing here (a runaway build must not fill
/// the store); the build itself goes on.
const MAX_BUILD_LOG: i64 = 64 << 20;

pub fn routes() -> Router<AppState> {
    let p = podspace_node::protocol::PREFIX;
    Router::new()
        .route(&format!("{p}/{{node}}/lease"), post(lease))
        .route(&format!("{p}/{{node}}/heartbeat"), post(heartbeat))
        .route(
            &format!("{p}/{{node}}/builds/{{ns}}/{{name}}/log"),
            post(append_log),
        )
        .route(
            &format!("{p}/{{node}}/builds/{{ns}}/{{name}}/details"),
            put(report),
        )
        .route(
            &format!("{p}/{{node}}/builds/{{ns}}/{{name}}/input"),
            get(input),
        )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn respond(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(|e| e.into_response())
}

/// The caller must be a build node; `node` must be a sane name.
async fn check_node(state: &AppState, caller: Option<&Caller>, node: &str) -> ApiResult<Principal> {
    let p = caller
        .and_then(|c| c.0.clone())
        .ok_or_else(|| ApiError(Status::unauthorized()))?;
    if node.is_empty()
        || node.len() > 63
        || !node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(ApiError(Status::bad_request(format!(
            "invalid node name {:?}",
            node.chars().take(80).collect::<String>()
        ))));
    }
    if state.authz.is_cluster_admin(&p).await?
        || state.authz.has_cluster_role(&p, BUILD_NODE_ROLE).await?
    {
        return Ok(p);
    }
    Err(ApiError(Status::new(
        Reason::Forbidden,
        format!(
            "User {:?} is not a build node (cluster role {BUILD_NODE_ROLE})",
            p.name
        ),
    )))
}

/// The build `ns/name` if `node` holds its lease.
async fn leased_build(state: &AppState, node: &str, ns: &str, name: &str) -> ApiResult<Build> {
    let build = state.store.get_as::<Build>(ns, name).await?;
    match state.builds.build_lease(&build.metadata.uid).await? {
        Some(l) if l.node == node => Ok(build),
        _ => Err(ApiError(Status::new(
            Reason::Conflict,
            format!("node {node:?} does not hold the lease of build {ns}/{name}"),
        ))),
    }
}

async fn lease(State(state): State<AppState>, Path(node): Path<String>, req: Request) -> Response {
    respond(lease_inner(state, node, req).await)
}

async fn lease_inner(state: AppState, node: String, req: Request) -> ApiResult<Response> {
    check_node(&state, req.extensions().get::<Caller>(), &node).await?;
    let body = read_body(req.into_body(), 4096).await?;
    let ask: LeaseRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(Status::bad_request(format!("invalid lease request: {e}"))))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(ask.wait_seconds.min(60));
    let mut commits = state.store.subscribe_commits();
    let mut wake = state.lease_wake.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        if let Some(grant) = try_lease(&state, &node).await? {
            return Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&grant).unwrap_or_default(),
            ));
        }
        // Woken by any local commit; the timer covers other replicas.
        tokio::select! {
            _ = commits.changed() => {}
            _ = wake.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            _ = crate::app::stopped(&mut shutdown) => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// The Pending builds, oldest first, as of a local commit. Every waiting
/// lease poll of this replica is woken by the same commit; one of them
/// lists the builds and the others reuse that list (a stale entry only
/// costs a failed claim). Other replicas' commits are seen within the TTL.
#[derive(Default)]
pub struct PendingBuilds {
    cached: tokio::sync::Mutex<Option<PendingSnapshot>>,
}

struct PendingSnapshot {
    /// The local commit it was listed after.
    rv: i64,
    listed: std::time::Instant,
    builds: Arc<Vec<Build>>,
}

const PENDING_TTL: Duration = Duration::from_millis(500);

impl PendingBuilds {
    async fn get(&self, state: &AppState) -> ApiResult<Arc<Vec<Build>>> {
        let rv = *state.store.subscribe_commits().borrow();
        let mut cached = self.cached.lock().await;
        if let Some(snap) = cached.as_ref() {
            if snap.rv == rv && snap.listed.elapsed() < PENDING_TTL {
                return Ok(snap.builds.clone());
            }
        }
        let (builds, _) = state
            .store
            .list_as::<Build>("", &LabelSelector::everything())
            .await?;
        let mut queue: Vec<Build> = builds
            .into_iter()
            .filter(|b| phase::phase(b) == phase::PENDING && !phase::cancel_requested(b))
            .collect();
        queue.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, phase::number(a))
                .cmp(&(&b.metadata.creation_timestamp, phase::number(b)))
        });
        let builds = Arc::new(queue);
        *cached = Some(PendingSnapshot {
            rv,
            listed: std::time::Instant::now(),
            builds: builds.clone(),
        });
        Ok(builds)
    }
}

async fn try_lease(state: &AppState, node: &str) -> ApiResult<Option<LeaseGrant>> {
    let queue = state.pending_builds.get(state).await?;
    let lease_ms = state.config.build_lease.as_millis() as i64;
    for b in queue.iter() {
        let binary = b.spec.is_binary();
        let input = match binary {
            true => state.builds.build_input(&b.metadata.uid).await?,
            false => None,
        };
        if binary && input.is_none() {
            give_up_on_missing_input(state, b).await?;
            continue;
        }
        let lease = BuildLease {
            uid: b.metadata.uid.clone(),
            namespace: b.metadata.namespace.clone(),
            name: b.metadata.name.clone(),
            node: node.to_string(),
            expires_at: now_ms() + lease_ms,
        };
        if !state.builds.claim_build(&lease).await? {
            continue;
        }
        // The claim is only an offer until the node confirms it (its first
        // report, Running): a node that vanished while its lease poll was
        // answered never starts the build, and the offer simply expires.
        let current = match state
            .store
            .find_as::<Build>(&b.metadata.namespace, &b.metadata.name)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                state.builds.release_build(&lease.uid, None).await?;
                return Err(e.into());
            }
        };
        let Some(build) = current.filter(|c| {
            c.metadata.uid == b.metadata.uid
                && phase::phase(c) == phase::PENDING
                && !phase::cancel_requested(c)
        }) else {
            state.builds.release_build(&lease.uid, None).await?;
            continue;
        };
        let input_files = match input_files(state, &build).await {
            Ok(Ok(files)) => files,
            Ok(Err(missing)) => {
                state.builds.release_build(&lease.uid, None).await?;
                podspace_builder::controller::transition(&state.store, &build, |b| {
                    phase::set(b, phase::FAILED, "MissingBuildInput", &missing);
                })
                .await?;
                continue;
            }
            Err(e) => {
                state.builds.release_build(&lease.uid, None).await?;
                return Err(e);
            }
        };
        let ns = build.metadata.namespace.clone();
        let token = state
            .authn
            .issue_token(
                &Principal::service_account(&ns, "builder").name,
                Duration::from_secs(6 * 3600),
                &podspace_builder::controller::token_description(&build.metadata.uid),
            )
            .await?;
        tracing::info!(namespace = %ns, build = %build.metadata.name, node, "build leased");
        return Ok(Some(LeaseGrant {
            git_auth: git_auth(state, &build).await?,
            push_auths: registry_auths(state, &build, build.spec.push_secret()).await?,
            pull_auths: registry_auths(state, &build, build.spec.strategy.pull_secret()).await?,
            has_input: input.is_some(),
            build: serde_json::to_value(&build)
                .map_err(|e| ApiError(Status::internal(format!("encoding the build: {e}"))))?,
            lease_seconds: state.config.build_lease.as_secs(),
            registry: state.registry_host.clone(),
            registry_token: token.token,
            max_context_bytes: state.config.limits.max_binary_context,
            max_context_entries: state.config.limits.max_binary_entries,
            allow_root_assemble: state.config.s2i_allow_root,
            input_files,
        }));
    }
    Ok(None)
}

/// A binary build whose upload never arrived (the uploader died between
/// creating the build and recording the input) is cancelled after a while.
async fn give_up_on_missing_input(state: &AppState, b: &Build) -> ApiResult<()> {
    let created = chrono::DateTime::parse_from_rfc3339(&b.metadata.creation_timestamp)
        .map(|t| t.timestamp())
        .unwrap_or(0);
    if chrono::Utc::now().timestamp() - created < BINARY_INPUT_TIMEOUT {
        return Ok(());
    }
    podspace_builder::controller::transition(&state.store, b, |b| {
        if phase::cancel(b) {
            b.status.message = "The binary input never arrived.".into();
        }
    })
    .await?;
    Ok(())
}

/// A Secret of the build's project.
async fn build_secret(
    state: &AppState,
    build: &Build,
    name: Option<&str>,
) -> ApiResult<Option<Secret>> {
    let Some(name) = name else {
        return Ok(None);
    };
    Ok(state
        .store
        .find_as::<Secret>(&build.metadata.namespace, name)
        .await?)
}

/// `spec.source.secrets` and `configMaps`, read in the build's project; a
/// missing one is the message the build fails with.
async fn input_files(
    state: &AppState,
    build: &Build,
) -> ApiResult<Result<Vec<InputFiles>, String>> {
    use base64::Engine;
    let b64 = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
        files
            .into_iter()
            .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
            .collect()
    };
    let ns = &build.metadata.namespace;
    let Some(source) = build.spec.source.as_ref() else {
        return Ok(Ok(Vec::new()));
    };
    let mut out = Vec::new();
    for (i, s) in source.secrets.iter().flatten().enumerate() {
        let name = &s.secret.name;
        let Some(secret) = state.store.find_as::<Secret>(ns, name).await? else {
            return Ok(Err(format!(
                "secret {name:?} (spec.source.secrets[{i}]) not found in project {ns:?}"
            )));
        };
        out.push(InputFiles {
            kind: InputKind::Secret,
            name: name.clone(),
            destination_dir: s.destination_dir.clone().unwrap_or_default(),
            files: b64(secret.files()),
        });
    }
    for (i, m) in source.config_maps.iter().flatten().enumerate() {
        let name = &m.config_map.name;
        let Some(map) = state.store.find_as::<ConfigMap>(ns, name).await? else {
            return Ok(Err(format!(
                "configMap {name:?} (spec.source.configMaps[{i}]) not found in project {ns:?}"
            )));
        };
        out.push(InputFiles {
            kind: InputKind::ConfigMap,
            name: name.clone(),
            destination_dir: m.destination_dir.clone().unwrap_or_default(),
            files: b64(map.files()),
        });
    }
    Ok(Ok(out))
}

/// `spec.source.sourceSecret`: a basic-auth Secret (`username` and
/// `password`, or a `token` used as the password).
async fn git_auth(state: &AppState, build: &Build) -> ApiResult<Option<GitAuth>> {
    let Some(secret) = build_secret(state, build, build.spec.source_secret()).await? else {
        return Ok(None);
    };
    let password = secret.value("password").or_else(|| secret.value("token"));
    Ok(password.map(|password| GitAuth {
        username: secret.value("username").unwrap_or_else(|| "git".into()),
        password,
    }))
}

/// Credentials for other registries: `output.pushSecret` (push) and the
/// strategy's `pullSecret` (base images), as Docker config Secrets.
async fn registry_auths(
    state: &AppState,
    build: &Build,
    secret: Option<&str>,
) -> ApiResult<BTreeMap<String, RegistryAuth>> {
    let Some(secret) = build_secret(state, build, secret).await? else {
        return Ok(BTreeMap::new());
    };
    Ok(secret
        .registry_credentials()
        .into_iter()
        .map(|(host, (username, password))| (host, RegistryAuth { username, password }))
        .collect())
}

async fn heartbeat(
    State(state): State<AppState>,
    Path(node): Path<String>,
    req: Request,
) -> Response {
    respond(heartbeat_inner(state, node, req).await)
}

async fn heartbeat_inner(state: AppState, node: String, req: Request) -> ApiResult<Response> {
    check_node(&state, req.extensions().get::<Caller>(), &node).await?;
    let body = read_body(req.into_body(), 1 << 20).await?;
    let beat: Heartbeat = serde_json::from_slice(&body)
        .map_err(|e| ApiError(Status::bad_request(format!("invalid heartbeat: {e}"))))?;
    let expires = now_ms() + state.config.build_lease.as_millis() as i64;
    let held = state
        .builds
        .renew_leases(&node, &beat.builds, expires)
        .await?;
    let held_set: BTreeSet<&String> = held.iter().collect();
    let mut reply = HeartbeatReply {
        lost: beat
            .builds
            .iter()
            .filter(|u| !held_set.contains(u))
            .cloned()
            .collect(),
        ..Default::default()
    };
    for uid in &held {
        let Some(lease) = state.builds.build_lease(uid).await? else {
            continue;
        };
        let stop = match state
            .store
            .find_as::<Build>(&lease.namespace, &lease.name)
            .await?
        {
            Some(b) => {
                b.metadata.uid != *uid
                    || phase::cancel_requested(&b)
                    || phase::is_terminal(phase::phase(&b))
            }
            None => true,
        };
        if stop {
            reply.cancel.push(uid.clone());
        }
    }
    Ok(Json(reply).into_response())
}

#[derive(serde::Deserialize)]
struct LogQuery {
    pos: i64,
}

async fn append_log(
    State(state): State<AppState>,
    Path((node, ns, name)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
    req: Request,
) -> Response {
    respond(
        async {
            check_node(&state, req.extensions().get::<Caller>(), &node).await?;
            let build = leased_build(&state, &node, &ns, &name).await?;
            let data = read_body(req.into_body(), MAX_LOG_CHUNK).await?;
            if q.pos < 0 {
                return Err(ApiError(Status::bad_request("pos must not be negative")));
            }
            if q.pos + data.len() as i64 > MAX_BUILD_LOG {
                return Err(ApiError(Status::new(
                    Reason::RequestEntityTooLarge,
                    format!("the build log is over {MAX_BUILD_LOG} bytes; the rest is not kept"),
                )));
            }
            state
                .builds
                .append_build_log(&ns, &name, &build.metadata.uid, q.pos, &data)
                .await?;
            state.build_logs.send_modify(|n| *n += 1);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn report(
    State(state): State<AppState>,
    Path((node, ns, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    respond(report_inner(state, node, ns, name, req).await)
}

async fn report_inner(
    state: AppState,
    node: String,
    ns: String,
    name: String,
    req: Request,
) -> ApiResult<Response> {
    check_node(&state, req.extensions().get::<Caller>(), &node).await?;
    let build = leased_build(&state, &node, &ns, &name).await?;
    let body = read_body(req.into_body(), 1 << 20).await?;
    let r: BuildReport = serde_json::from_slice(&body)
        .map_err(|e| ApiError(Status::bad_request(format!("invalid build report: {e}"))))?;
    if !matches!(
        r.phase.as_str(),
        phase::RUNNING | phase::COMPLETE | phase::FAILED | phase::ERROR | phase::CANCELLED
    ) {
        return Err(ApiError(Status::bad_request(format!(
            "a node cannot report phase {:?}",
            r.phase
        ))));
    }
    let uid = build.metadata.uid.clone();
    let terminal = phase::is_terminal(&r.phase);
    let node_name = node.clone();
    let updated = state
        .store
        .mutate_as::<Build, _>(&ns, &name, None, UpdateScope::All, |b| {
            let current = phase::phase(b).to_string();
            // Pending → Running is the node confirming its lease; every
            // other report is about a build it runs.
            let confirming = current == phase::PENDING && r.phase == phase::RUNNING;
            if b.metadata.uid != uid
                || phase::cancel_requested(b) && confirming
                || !(confirming || current == phase::RUNNING)
            {
                return Err(podspace_builder::controller::terminal_refusal(b));
            }
            if confirming {
                let pod = format!("{}-build", b.metadata.name);
                let annotations = &mut b.metadata.annotations;
                annotations.insert("podspace.io/build-node".into(), node_name);
                annotations.insert("openshift.io/build.pod-name".into(), pod);
            }
            if let Some(rev) = &r.revision {
                b.spec.revision = Some(rev.clone());
            }
            if !phase::set(b, &r.phase, &r.reason, &r.message) {
                return Err(podspace_builder::controller::terminal_refusal(b));
            }
            let status = &mut b.status;
            if let Some(reference) = &r.output_docker_image_reference {
                status.output_docker_image_reference = Some(reference.clone());
            }
            if let Some(digest) = &r.image_digest {
                status.output = Some(BuildStatusOutput {
                    to: Some(BuildStatusOutputTo {
                        image_digest: digest.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            if let Some(stages) = &r.stages {
                status.extra.insert("stages".into(), stages.clone());
            }
            if let Some(snippet) = r.log_snippet.as_ref().filter(|s| !s.is_empty()) {
                status.log_snippet = Some(snippet.clone());
            }
            Ok(())
        })
        .await?;
    if terminal {
        state.builds.release_build(&uid, None).await?;
        // The build's push token dies with it (a replica's token cache may
        // still accept it for its last few seconds).
        state
            .store
            .delete_tokens_described(&podspace_builder::controller::token_description(&uid))
            .await?;
        let secs = updated.status.duration.unwrap_or(0) as f64 / 1e9;
        state.metrics.observe_build(&r.phase, secs);
        tracing::info!(namespace = %ns, build = %name, phase = %r.phase, reason = %r.reason, node, "build finished");
    }
    Ok(Json(updated).into_response())
}

async fn input(
    State(state): State<AppState>,
    Path((node, ns, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let caller = req.extensions().get::<Caller>().cloned();
    respond(input_inner(state, caller, node, ns, name).await)
}

async fn input_inner(
    state: AppState,
    caller: Option<Caller>,
    node: String,
    ns: String,
    name: String,
) -> ApiResult<Response> {
    check_node(&state, caller.as_ref(), &node).await?;
    let build = leased_build(&state, &node, &ns, &name).await?;
    let input = state
        .builds
        .build_input(&build.metadata.uid)
        .await?
        .ok_or_else(|| {
            ApiError(Status::new(
                Reason::NotFound,
                "the build has no binary input",
            ))
        })?;
    let stream = state
        .storage
        .read(&input.location, None)
        .await
        .map_err(|e| ApiError(Status::internal(format!("reading the build input: {e}"))))?;
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    resp.headers_mut()
        .insert(axum::http::header::CONTENT_LENGTH, input.size.into());
    Ok(resp)
}
