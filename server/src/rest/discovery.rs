//! Discovery documents, so generic Kubernetes clients can find our kinds.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use podspace_api::kinds::{KINDS, VERSION};
use podspace_api::{Reason, Status};
use serde_json::{json, Value};

use super::path::Discovery;
use crate::http::{json_response, ApiError, ApiResult};

pub fn serve(d: Discovery, method: &Method) -> ApiResult<Response> {
    if method != Method::GET {
        return Err(ApiError(Status::new(
            Reason::MethodNotAllowed,
            "discovery documents are read-only",
        )));
    }
    let body = match d {
        Discovery::Groups => {
            let mut groups: Vec<&str> = KINDS
                .iter()
                .map(|k| k.group)
                .filter(|g| !g.is_empty())
                .collect();
            groups.sort();
            groups.dedup();
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|g| {
                    let gv = format!("{g}/{VERSION}");
                    json!({"name": g, "versions": [{"groupVersion": gv, "version": VERSION}], "preferredVersion": {"groupVersion": gv, "version": VERSION}})
                })
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        Discovery::LegacyVersions => json!({"kind": "APIVersions", "versions": [VERSION]}),
        Discovery::Resources(group) => {
            let kinds = KINDS.iter().filter(|k| match &group {
                Some(g) => k.group == g,
                None => k.is_openshift(),
            });
            let mut resources: Vec<Value> = Vec::new();
            for k in kinds {
                let verbs = if k.plain_create {
                    json!(["create", "delete", "get", "list", "patch", "update", "watch"])
                } else {
                    json!(["delete", "get", "list", "patch", "update", "watch"])
                };
                resources.push(json!({"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs, "shortNames": k.short}));
                if k.has_status {
                    resources.push(json!({"name": format!("{}/status", k.plural), "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
                }
            }
            let gv = match &group {
                Some(g) if !g.is_empty() => format!("{g}/{VERSION}"),
                _ => VERSION.to_string(),
            };
            if group.as_deref() == Some(podspace_api::kinds::PROJECT_GROUP) || group.is_none() {
                resources.push(json!({"name": "projectrequests", "namespaced": false, "kind": "ProjectRequest", "verbs": ["create"]}));
            }
            if resources.is_empty() {
                return Err(ApiError(Status::new(
                    Reason::NotFound,
                    "the server could not find the requested resource",
                )));
            }
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        }
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
