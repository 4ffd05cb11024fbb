//! Cluster administration outside the Kubernetes-shaped API: registry
//! garbage collection on demand (`POST /admin/registry/gc`, what
//! `podspace gc` does against a running service's store) and image pruning
//! (`POST /admin/prune/images`, behind `psc adm prune images`).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use podspace_api::auth::Principal;
use podspace_api::{Reason, Status};
use podspace_builder::prune::PruneBuilds;
use podspace_registry::gc::{GcError, GcOptions, PruneImages};

use crate::app::AppState;
use crate::http::{json_response, ApiError, ApiResult, Caller};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/registry/gc", post(gc))
        .route("/admin/prune/images", post(prune_images))
        .route("/admin/prune/builds", post(prune_builds))
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
) -> ApiResult<Response> {
    let caller = caller.map(|c| c.0);
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
    let known = ["keepTagRevisions", "keepYoungerThanSeconds", "confirm"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown parameter {k:?}: use {}",
            known.join(", ")
        )));
    }
    let keep = number(q, "keepTagRevisions", 3)?;
    if keep == 0 {
        return Err(bad(
            "keepTagRevisions must be at least 1: a tag keeps its newest image".into(),
        ));
    }
    Ok(PruneImages {
        keep_tag_revisions: keep as usize,
        keep_younger_than: Duration::from_secs(number(q, "keepYoungerThanSeconds", 3600)?),
        confirm: flag(q, "confirm")?,
        gc_grace,
    })
}

async fn prune_builds(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let caller = caller.map(|c| c.0);
    let p = cluster_admin(&state, caller, "prune builds").await?;
    let opts = prune_builds_options(&q)?;
    tracing::info!(user = %p.name, confirm = opts.confirm, "build prune requested");
    let pruned = podspace_builder::prune::prune_builds(&state.store, opts).await?;
    render(&serde_json::json!({"confirm": opts.confirm, "builds": pruned}))
}

/// `keepComplete=N` (5), `keepFailed=N` (1), `keepYoungerThanSeconds=S`
/// (3600), `orphans=true|false` (false), `confirm=true|false` (false).
fn prune_builds_options(q: &HashMap<String, String>) -> ApiResult<PruneBuilds> {
    let known = [
        "keepComplete",
        "keepFailed",
        "keepYoungerThanSeconds",
        "orphans",
        "confirm",
    ];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown parameter {k:?}: use {}",
            known.join(", ")
        )));
    }
    Ok(PruneBuilds {
        keep_complete: number(q, "keepComplete", 5)? as usize,
        keep_failed: number(q, "keepFailed", 1)? as usize,
        keep_younger_than: Duration::from_secs(number(q, "keepYoungerThanSeconds", 3600)?),
        orphans: flag(q, "orphans")?,
        confirm: flag(q, "confirm")?,
    })
}

fn bad(m: String) -> ApiError {
    ApiError(Status::bad_request(m))
}

fn number(q: &HashMap<String, String>, name: &str, default: u64) -> ApiResult<u64> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("{name} must be a whole number, not {v:?}"))),
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> ApiResult<bool> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(bad(format!("{name} must be true or false, not {v:?}"))),
    }
}

async fn gc(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let caller = caller.map(|c| c.0);
    let p = cluster_admin(&state, caller, "collect the registry's garbage").await?;
    let opts = gc_options(&q, state.config.gc_grace)?;
    tracing::info!(user = %p.name, dry_run = opts.dry_run, grace_seconds = opts.grace.as_secs(), "registry garbage collection requested");
    let report = state.collector.run(opts).await.map_err(gc_error)?;
    render(&report)
}

/// `dryRun=true|false`, `graceSeconds=N` (the configured grace when absent).
fn gc_options(q: &HashMap<String, String>, grace: Duration) -> ApiResult<GcOptions> {
    let known = ["dryRun", "graceSeconds"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown parameter {k:?}: use {}",
            known.join(", ")
        )));
    }
    Ok(GcOptions {
        grace: Duration::from_secs(number(q, "graceSeconds", grace.as_secs())?),
        dry_run: flag(q, "dryRun")?,
    })
}
