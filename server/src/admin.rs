//! Cluster administration outside the Kubernetes-shaped API: registry
//! garbage collection on demand (`POST /admin/registry/gc`, what
//! `podspace gc` does against a running service's store).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use podspace_api::{Reason, Status};
use podspace_registry::gc::{GcError, GcOptions};

use crate::app::AppState;
use crate::http::{json_response, ApiError, ApiResult, Caller};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/registry/gc", post(gc))
}

async fn gc(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    gc_inner(state, caller.map(|c| c.0), q)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn gc_inner(
    state: AppState,
    caller: Option<Caller>,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let p = caller
        .and_then(|c| c.0)
        .ok_or_else(|| ApiError(Status::unauthorized()))?;
    if !state.authz.is_cluster_admin(&p).await? {
        return Err(ApiError(Status::new(
            Reason::Forbidden,
            format!(
                "User {:?} cannot collect the registry's garbage: cluster-admin only",
                p.name
            ),
        )));
    }
    let opts = gc_options(&q, state.config.gc_grace)?;
    tracing::info!(user = %p.name, dry_run = opts.dry_run, grace_seconds = opts.grace.as_secs(), "registry garbage collection requested");
    let report = state.collector.run(opts).await.map_err(|e| match e {
        GcError::Store(e) => ApiError::from(e),
        e @ GcError::Corrupt { .. } => ApiError(Status::internal(e.to_string())),
    })?;
    let body = serde_json::to_vec(&report)
        .map_err(|e| ApiError(Status::internal(format!("encoding the report: {e}"))))?;
    Ok(json_response(StatusCode::OK, body))
}

/// `dryRun=true|false`, `graceSeconds=N` (the configured grace when absent).
fn gc_options(q: &HashMap<String, String>, grace: Duration) -> ApiResult<GcOptions> {
    let bad = |m: String| ApiError(Status::bad_request(m));
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "dryRun" | "graceSeconds"))
    {
        return Err(bad(format!(
            "unknown parameter {k:?}: use dryRun and graceSeconds"
        )));
    }
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("false") => false,
        Some("true") | Some("All") => true,
        Some(v) => return Err(bad(format!("dryRun must be true or false, not {v:?}"))),
    };
    let grace = match q.get("graceSeconds") {
        None => grace,
        Some(v) => Duration::from_secs(v.parse().map_err(|_| {
            bad(format!(
                "graceSeconds must be a number of seconds, not {v:?}"
            ))
        })?),
    };
    Ok(GcOptions { grace, dry_run })
}
