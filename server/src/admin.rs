//! Cluster administration outside the Kubernetes-shaped API: registry
//! garbage collection on demand (`POST /admin/registry/gc`, what
//! `podspace gc` does against a running service's store) and image pruning
//! (`POST /admin/prune/images`, behind `psc adm prune images`).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use podspace_api::auth::Principal;
use podspace_api::{Reason, Status};
use podspace_registry::gc::{GcError, GcOptions, PruneImages};

use crate::app::AppState;
use crate::http::{json_response, ApiError, ApiResult, Caller};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/registry/gc", post(gc))
        .route("/admin/prune/images", post(prune_images))
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

/// The caller, if a cluster-admin.
async fn cluster_admin(
    state: &AppState,
    caller: Option<Caller>,
    what: &str,
) -> ApiResult<Principal> {
    let p = caller
        .and_then(|c| c.0)
        .ok_or_else(|| ApiError(Status::unauthorized()))?;
    if !state.authz.is_cluster_admin(&p).await? {
        return Err(ApiError(Status::new(
            Reason::Forbidden,
            format!("User {:?} cannot {what}: cluster-admin only", p.name),
        )));
    }
    Ok(p)
}

fn gc_error(e: GcError) -> ApiError {
    match e {
        GcError::Store(e) => ApiError::from(e),
        e @ GcError::Corrupt { .. } => ApiError(Status::internal(e.to_string())),
    }
}

fn render(report: &impl serde::Serialize) -> ApiResult<Response> {
    let body = serde_json::to_vec(report)
        .map_err(|e| ApiError(Status::internal(format!("encoding the report: {e}"))))?;
    Ok(json_response(StatusCode::OK, body))
}

async fn prune_images(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    prune_images_inner(state, caller.map(|c| c.0), q)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn prune_images_inner(
    state: AppState,
    caller: Option<Caller>,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let p = cluster_admin(&state, caller, "prune images").await?;
    let opts = prune_options(&q, state.config.gc_grace)?;
    tracing::info!(user = %p.name, confirm = opts.confirm, keep_tag_revisions = opts.keep_tag_revisions, "image prune requested");
    let report = podspace_registry::gc::prune_images(&state.store, &state.collector, opts)
        .await
        .map_err(gc_error)?;
    render(&report)
}

/// `keepTagRevisions=N` (3), `keepYoungerThanSeconds=S` (3600),
/// `confirm=true|false` (false: report only).
fn prune_options(q: &HashMap<String, String>, gc_grace: Duration) -> ApiResult<PruneImages> {
    let bad = |m: String| ApiError(Status::bad_request(m));
    let known = ["keepTagRevisions", "keepYoungerThanSeconds", "confirm"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown parameter {k:?}: use keepTagRevisions, keepYoungerThanSeconds and confirm"
        )));
    }
    let number = |name: &str, default: u64| -> ApiResult<u64> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("{name} must be a whole number, not {v:?}"))),
        }
    };
    let keep = number("keepTagRevisions", 3)?;
    if keep == 0 {
        return Err(bad(
            "keepTagRevisions must be at least 1: a tag keeps its newest image".into(),
        ));
    }
    let confirm = match q.get("confirm").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(bad(format!("confirm must be true or false, not {v:?}"))),
    };
    Ok(PruneImages {
        keep_tag_revisions: keep as usize,
        keep_younger_than: Duration::from_secs(number("keepYoungerThanSeconds", 3600)?),
        confirm,
        gc_grace,
    })
}

async fn gc_inner(
    state: AppState,
    caller: Option<Caller>,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let p = cluster_admin(&state, caller, "collect the registry's garbage").await?;
    let opts = gc_options(&q, state.config.gc_grace)?;
    tracing::info!(user = %p.name, dry_run = opts.dry_run, grace_seconds = opts.grace.as_secs(), "registry garbage collection requested");
    let report = state.collector.run(opts).await.map_err(gc_error)?;
    render(&report)
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
