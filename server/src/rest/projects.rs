//! Project requests: any user may create a project and becomes its admin.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use podspace_api::auth::Principal;
use podspace_api::{Object, Reason, Status};
use serde_json::Value;

use crate::app::AppState;
use crate::http::{json_response, read_request_object, ApiError, ApiResult};

/// `POST /apis/project.openshift.io/v1/projectrequests`
pub async fn request(state: &AppState, p: &Principal, req: Request) -> ApiResult<Response> {
    if req.method() != axum::http::Method::POST {
        return Err(ApiError(Status::new(
            Reason::MethodNotAllowed,
            "projectrequests only accepts POST; list projects at /apis/project.openshift.io/v1/projects",
        )));
    }
    let value = read_request_object(req, state.config.max_body).await?;
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "ProjectRequest")
    {
        return Err(ApiError(Status::bad_request(
            "the body must be a ProjectRequest",
        )));
    }
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let project = create(state, p, name, &field("displayName"), &field("description")).await?;
    let mut body = project.to_value();
    body["apiVersion"] = Value::String(
        Some(&podspace_api::kinds::PROJECT)
            .map(|k| k.api_version())
            .unwrap_or_default(),
    );
    Ok(json_response(
        StatusCode::CREATED,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// Creates the project with its service accounts and bindings, all at once.
pub async fn create(
    state: &AppState,
    p: &Principal,
    name: &str,
    display: &str,
    description: &str,
) -> ApiResult<Object> {
    if p.as_service_account().is_some() {
        return Err(ApiError(Status::new(
            Reason::Forbidden,
            "service accounts may not create projects",
        )));
    }
    let objs = podspace_api::projects::new_project(name, display, description, p)?;
    let mut created = state.store.create_many(objs).await?;
    Ok(created.remove(0))
}
