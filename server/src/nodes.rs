//! The API side of the build node protocol (`podspace_node::
//! protocol`): leases, heartbeats, log chunks, reports and binary input.
//! Only principals bound to the `system:build-node` cluster role (or
//! cluster-admins) may speak it, and every call about a build is refused
//! unless the calling node holds that build's lease.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use podspace_api::auth::{Principal, BUILD_NODE_ROLE};
use podspace_api::model::Build;
use podspace_api::{Reason, Status};
use podspace_builder::leases::LeaseError;
use podspace_builder::protocol::{BuildReport, Heartbeat, LeaseRequest};

use crate::app::AppState;
use crate::http::{json_response, read_body, ApiError, ApiResult, Caller};

const MAX_LOG_CHUNK: usize = 4 << 20;
/// A build's stored log stops growing here (a runaway build must not fill
/// the store); the build itself goes on.
const MAX_BUILD_LOG: i64 = 64 << 20;

pub fn routes() -> Router<AppState> {
    let p = podspace_builder::protocol::PREFIX;
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

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::Store(e) => e.into(),
            LeaseError::Auth(e) => e.into(),
            LeaseError::NotHolder { .. } => ApiError(Status::new(Reason::Conflict, e.to_string())),
            LeaseError::Encode(e) => ApiError(Status::internal(format!("encoding the build: {e}"))),
        }
    }
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
    Ok(state.leases.leased_build(node, ns, name).await?)
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
        if let Some(grant) = state.leases.offer(&node).await? {
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
    let reply = state.leases.heartbeat(&node, &beat.builds).await?;
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
    let updated = state.leases.report(&node, &build, &r).await?;
    if podspace_builder::phase::is_terminal(&r.phase) {
        let secs = updated.status.duration.unwrap_or(0) as f64 / 1e9;
        state.metrics.observe_build(&r.phase, secs);
        tracing::info!(namespace = %ns, build = %name, phase = %r.phase, reason = %r.reason, node = %node, "build finished");
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
