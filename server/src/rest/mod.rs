//! The Kubernetes-style REST API: `/apis/<group>/v1/...`, and the legacy
//! `/oapi/v1/...` (OpenShift kinds) and `/api/v1/...` (core kinds) aliases.

mod builds;
pub mod discovery;
mod images;
pub mod oauth;
mod objects;
mod path;
mod projects;
mod watch;
pub mod webhook_rate;
pub mod webhook_refusals;
mod webhooks;

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use podspace_api::auth::{Principal, Verb};
use podspace_api::{KindInfo, Reason, Status};
use serde_json::Value;

use crate::app::AppState;
use crate::http::{ApiError, ApiResult, Caller};
pub use builds::forget_input as forget_build_input;
pub use path::{Route, Target};

pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match handle(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, req: Request) -> ApiResult<Response> {
    let caller = req.extensions().get::<Caller>().and_then(|c| c.0.clone());
    let route = path::parse(req.uri().path())?;
    // Webhook deliveries authenticate by their URL secret, not a token.
    if let Route::Object(target) = &route {
        if webhooks::serves(target) {
            let target = target.clone();
            return Ok(webhooks::handle(&state, caller.as_ref(), target, req).await);
        }
    }
    let principal = caller.ok_or_else(|| ApiError(Status::unauthorized()))?;
    let query = query_params(req.uri())?;
    match route {
        Route::Discovery(d) => discovery::serve(d, req.method()),
        Route::ProjectRequests => projects::request(&state, &principal, req).await,
        Route::Object(target) if builds::serves(&target) => {
            builds::handle(&state, &principal, target, query, req).await
        }
        Route::Object(target) if !target.kind.stored => {
            images::handle(&state, &principal, target, req).await
        }
        Route::Object(target) => objects::handle(&state, &principal, target, query, req).await,
    }
}

pub type Query = HashMap<String, String>;

fn query_params(uri: &Uri) -> ApiResult<Query> {
    axum::extract::Query::<Query>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError(Status::bad_request(format!("invalid query string: {e}"))))
}

/// Refuses with Kubernetes' Forbidden message unless `p` may do `verb`.
async fn authorize(state: &AppState, p: &Principal, verb: Verb, target: &Target) -> ApiResult<()> {
    let kind = target.kind;
    let resource = target.resource();
    let allowed = match kind.kind {
        "Project" => match (verb, target.name.as_deref()) {
            // Everyone may list and watch projects: the answer holds only
            // the projects they are a member of.
            (Verb::List | Verb::Watch, _) => true,
            (Verb::Create, None) => true,
            (Verb::Get, Some(name)) => state.authz.is_member(p, name).await?,
            (_, Some(name)) => state.authz.allowed(p, verb, "projects", Some(name)).await?,
            _ => false,
        },
        "User" if target.name.as_deref() == Some("~") && verb == Verb::Get => true,
        _ => {
            let ns = if kind.namespaced {
                target.ns.as_deref()
            } else {
                None
            };
            state.authz.allowed(p, verb, &resource, ns).await?
        }
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError(forbidden(p, verb, kind, target)))
}

pub fn forbidden(p: &Principal, verb: Verb, kind: &KindInfo, target: &Target) -> Status {
    let what = match &target.name {
        Some(name) => format!("{} {name:?}", kind.qualified_plural()),
        None => kind.qualified_plural(),
    };
    let resource = target.resource();
    let scope = match (&target.ns, kind.namespaced) {
        (Some(ns), true) => format!(" in the namespace {ns:?}"),
        (None, true) => " at the cluster scope".to_string(),
        _ => String::new(),
    };
    Status::new(
        Reason::Forbidden,
        format!(
            "{what} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?}{scope}",
            p.name,
            verb.as_str(),
            kind.group
        ),
    )
}

/// Serializes an object for a response under `target`'s prefix: the legacy
/// prefixes speak `apiVersion: v1`.
fn render(target: &Target, mut value: Value) -> Value {
    if target.legacy {
        if let Some(obj) = value.as_object_mut() {
            obj.insert("apiVersion".into(), Value::String("v1".into()));
        }
    }
    value
}
