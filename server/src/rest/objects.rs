//! get / list / create / update / patch / delete / watch of stored kinds.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use podspace_api::auth::{Principal, Verb};
use podspace_api::selector::LabelSelector;
use podspace_api::store::UpdateScope;
use podspace_api::validation::validate;
use podspace_api::{KindInfo, Object, Reason, Status};
use serde_json::{json, Value};

use super::{authorize, render, Query, Target};
use crate::app::AppState;
use crate::http::{
    body_type, json_response, read_body, read_object, read_optional_object, ApiError, ApiResult,
    BodyType,
};

pub async fn handle(
    state: &AppState,
    p: &Principal,
    target: Target,
    query: Query,
    req: Request,
) -> ApiResult<Response> {
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let method = req.method().clone();
    let verb = match (&method, target.name.is_some(), target.sub.as_deref()) {
        (&Method::GET, false, _) if watching => Verb::Watch,
        (&Method::GET, false, _) => Verb::List,
        (&Method::GET, true, None | Some("status")) => Verb::Get,
        (&Method::POST, false, None) => Verb::Create,
        (&Method::POST, true, Some("token")) if target.kind.kind == "ServiceAccount" => {
            Verb::Create
        }
        (&Method::PUT, true, None | Some("status")) => Verb::Update,
        (&Method::PATCH, true, None | Some("status")) => Verb::Patch,
        (&Method::DELETE, true, None) => Verb::Delete,
        (&Method::POST, true, Some("instantiate")) if target.kind.kind == "DeploymentConfig" => {
            Verb::Create
        }
        (_, true, Some(sub)) if !matches!(sub, "status" | "token") => {
            return Err(ApiError(Status::new(
                Reason::NotFound,
                "the server could not find the requested resource",
            )))
        }
        _ => {
            return Err(ApiError(Status::new(
                Reason::MethodNotAllowed,
                format!(
                    "the server does not allow this method on the requested resource ({method})"
                ),
            )))
        }
    };
    if target.sub.as_deref() == Some("status") && !target.kind.has_status {
        return Err(ApiError(Status::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )));
    }
    if target.kind.namespaced && target.ns.is_none() && !matches!(verb, Verb::List | Verb::Watch) {
        return Err(ApiError(Status::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )));
    }
    authorize(state, p, verb, &target).await?;
    let selector = match query.get("labelSelector") {
        Some(s) => {
            LabelSelector::parse(s).map_err(|e| ApiError(Status::bad_request(e.to_string())))?
        }
        None => LabelSelector::everything(),
    };
    if query.get("fieldSelector").is_some_and(|f| !f.is_empty()) {
        return Err(ApiError(Status::bad_request(
            "field selectors are not supported; use labelSelector",
        )));
    }
    let (parts, body) = req.into_parts();
    match verb {
        Verb::Watch => super::watch::serve(state, p, target, &query, selector).await,
        Verb::List => list(state, p, &target, &selector).await,
        Verb::Get => get(state, p, &target).await,
        Verb::Create if target.sub.as_deref() == Some("instantiate") => {
            instantiate_dc(state, &target, &parts.headers, body).await
        }
        Verb::Create if target.sub.as_deref() == Some("token") => {
            token_request(state, &target, &parts.headers, body).await
        }
        Verb::Create => create(state, p, &target, &parts.headers, body).await,
        Verb::Update => update(state, &target, &parts.headers, body).await,
        Verb::Patch => patch(state, &target, &parts.headers, body).await,
        Verb::Delete => delete(state, &target, &parts.headers, body).await,
    }
}

fn name_of(target: &Target) -> &str {
    target.name.as_deref().unwrap_or_default()
}

async fn get(state: &AppState, p: &Principal, target: &Target) -> ApiResult<Response> {
    let name = name_of(target);
    if target.kind.kind == "User" && name == "~" {
        return whoami(state, p, target).await;
    }
    let raw = state
        .store
        .get_raw(target.kind, target.ns_or_empty(), name)
        .await?;
    // The stored form carries the grouped apiVersion: sent as it is, unless
    // the legacy prefix asks for `v1`.
    if !target.legacy || target.kind.group.is_empty() {
        return Ok(json_response(
            StatusCode::OK,
            bytes::Bytes::copy_from_slice(raw.as_bytes()),
        ));
    }
    let value: Value = serde_json::from_str(&raw)
        .map_err(|e| ApiError::from(podspace_api::store::StoreError::from(e)))?;
    Ok(ok_json(StatusCode::OK, &render(target, value)))
}

async fn whoami(state: &AppState, p: &Principal, target: &Target) -> ApiResult<Response> {
    let user = match p.as_service_account() {
        Some(_) => None,
        None => state.store.get(target.kind, "", &p.name).await.ok(),
    };
    let value = match user {
        Some(u) => u.to_value(),
        None => Object::new("User", "", &p.name).to_value(),
    };
    Ok(ok_json(StatusCode::OK, &render(target, value)))
}

fn ok_json(code: StatusCode, value: &Value) -> Response {
    json_response(code, serde_json::to_vec(value).unwrap_or_default())
}

async fn list(
    state: &AppState,
    p: &Principal,
    target: &Target,
    selector: &LabelSelector,
) -> ApiResult<Response> {
    let (mut items, rv) = state
        .store
        .list(target.kind, target.ns_or_empty(), selector)
        .await?;
    if target.kind.kind == "Project" && !state.authz.is_cluster_admin(p).await? {
        let member_of = state.authz.member_namespaces(p).await?;
        items.retain(|o| member_of.contains(&o.metadata.name));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|o| render(target, o.to_value()))
        .collect();
    let list = json!({
        "kind": format!("{}List", target.kind.kind),
        "apiVersion": target.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    Ok(ok_json(StatusCode::OK, &list))
}

/// Reads and decodes an object body for `target`, checking that its kind,
/// apiVersion, namespace and name agree with the path.
async fn object_body(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<(Object, Value)> {
    let value = read_object(headers, body, state.config.max_body).await?;
    let mut obj: Object = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError(Status::bad_request(format!(
            "the object could not be decoded: {e}"
        )))
    })?;
    let kind = target.kind;
    if !obj.kind.is_empty() && obj.kind != kind.kind {
        return Err(ApiError(Status::bad_request(format!(
            "the kind in the body ({}) does not match the resource {}",
            obj.kind,
            kind.qualified_plural()
        ))));
    }
    if !kind.accepts_api_version(&obj.api_version) {
        return Err(ApiError(Status::bad_request(format!(
            "the apiVersion in the body ({}) does not serve kind {}: use {}",
            obj.api_version,
            kind.kind,
            kind.api_version()
        ))));
    }
    if kind.namespaced {
        let ns = target.ns_or_empty();
        if obj.metadata.namespace.is_empty() {
            obj.metadata.namespace = ns.to_string();
        } else if obj.metadata.namespace != ns {
            return Err(ApiError(Status::bad_request(format!(
                "the namespace of the provided object ({}) does not match the namespace sent on the request ({ns})",
                obj.metadata.namespace
            ))));
        }
    }
    if let Some(name) = &target.name {
        if obj.metadata.name.is_empty() {
            obj.metadata.name = name.clone();
        } else if &obj.metadata.name != name {
            return Err(ApiError(Status::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj.metadata.name
            ))));
        }
    }
    Ok((obj, value))
}

/// Validates an object whose name may still be a `generateName` prefix.
fn validate_new(kind: &'static KindInfo, obj: &Object) -> ApiResult<()> {
    if obj.metadata.name.is_empty() && !obj.metadata.generate_name.is_empty() {
        let mut probe = obj.clone();
        probe.metadata.name = format!("{}xxxxx", obj.metadata.generate_name);
        return validate(kind, &probe).map_err(ApiError);
    }
    validate(kind, obj).map_err(ApiError)
}

async fn create(
    state: &AppState,
    p: &Principal,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (mut obj, _) = object_body(state, target, headers, body).await?;
    let kind = target.kind;
    if kind.kind == "Project" {
        let ann = &obj.metadata.annotations;
        let display = ann
            .get(podspace_api::projects::DISPLAY_NAME)
            .cloned()
            .unwrap_or_default();
        let description = ann
            .get(podspace_api::projects::DESCRIPTION)
            .cloned()
            .unwrap_or_default();
        let project =
            super::projects::create(state, p, &obj.metadata.name, &display, &description).await?;
        return Ok(ok_json(
            StatusCode::CREATED,
            &render(target, project.to_value()),
        ));
    }
    if kind.has_status {
        obj.body.remove("status");
    }
    if kind.kind == "ImageStream" {
        // Where the stream's images are pushed and pulled.
        let repository = format!(
            "{}/{}/{}",
            state.registry_host, obj.metadata.namespace, obj.metadata.name
        );
        obj.body.insert(
            "status".into(),
            json!({"dockerImageRepository": repository}),
        );
    }
    // A user's password travels in the create body and is never stored in
    // the object.
    let password = match kind.kind {
        "User" => match obj.body.remove("password") {
            Some(Value::String(pw)) if pw.len() >= 8 => Some(pw),
            Some(_) => {
                return Err(ApiError(Status::new(
                    Reason::Invalid,
                    "users.user.openshift.io is invalid: password: must be a string of at least 8 characters",
                )))
            }
            None => None,
        },
        _ => None,
    };
    podspace_api::defaults::apply(kind, &mut obj, target.legacy);
    validate_new(kind, &obj)?;
    let created = state.store.create(kind, obj).await?;
    if let Some(pw) = password {
        state
            .authn
            .set_password(&created.metadata.name, &pw)
            .await?;
    }
    Ok(ok_json(
        StatusCode::CREATED,
        &render(target, created.to_value()),
    ))
}

fn scope(target: &Target) -> UpdateScope {
    if target.sub.as_deref() == Some("status") {
        UpdateScope::Status
    } else {
        UpdateScope::Main
    }
}

async fn update(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (mut obj, _) = object_body(state, target, headers, body).await?;
    podspace_api::defaults::apply(target.kind, &mut obj, target.legacy);
    validate(target.kind, &obj).map_err(ApiError)?;
    let updated = if target.kind.kind == "Build" {
        // Checked against the stored build under the writer lock.
        let precondition = match obj.metadata.resource_version.as_str() {
            "" => None,
            rv => Some(rv.parse::<i64>().map_err(|_| {
                ApiError(Status::bad_request(format!(
                    "metadata.resourceVersion: Invalid value: {rv:?}: must be an integer"
                )))
            })?),
        };
        let scope = scope(target);
        state
            .store
            .mutate(
                target.kind,
                target.ns_or_empty(),
                name_of(target),
                precondition,
                scope,
                move |cur| {
                    let mut next = obj;
                    // What the scope leaves untouched is not the client's change.
                    match scope {
                        UpdateScope::Status => {
                            next.body.insert(
                                "spec".into(),
                                cur.body.get("spec").cloned().unwrap_or(Value::Null),
                            );
                        }
                        _ => {
                            next.body.insert(
                                "status".into(),
                                cur.body.get("status").cloned().unwrap_or(Value::Null),
                            );
                        }
                    }
                    podspace_api::validation::validate_update(cur, &next)?;
                    *cur = next;
                    Ok(())
                },
            )
            .await?
    } else {
        state
            .store
            .update_checked(
                target.kind,
                obj,
                scope(target),
                podspace_api::validation::validate_update,
            )
            .await?
    };
    Ok(ok_json(StatusCode::OK, &render(target, updated.to_value())))
}

async fn patch(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ty = match body_type(headers) {
        Some(t @ (BodyType::MergePatch | BodyType::JsonPatch)) => t,
        _ => {
            return Err(ApiError(Status::new(
                Reason::UnsupportedMediaType,
                "PATCH takes application/merge-patch+json or application/json-patch+json",
            )))
        }
    };
    let bytes = read_body(body, state.config.max_body).await?;
    let patch: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(Status::bad_request(format!(
            "the patch is not valid JSON: {e}"
        )))
    })?;
    let precondition = match ty {
        BodyType::MergePatch => {
            if !patch.is_object() {
                return Err(ApiError(Status::bad_request(
                    "a merge patch must be a JSON object",
                )));
            }
            patch
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(|rv| {
                    rv.parse::<i64>().map_err(|_| {
                        ApiError(Status::bad_request(format!(
                            "metadata.resourceVersion: Invalid value: {rv:?}"
                        )))
                    })
                })
                .transpose()?
        }
        _ => None,
    };
    let json_patch = match ty {
        BodyType::JsonPatch => Some(
            serde_json::from_value::<json_patch::Patch>(patch.clone()).map_err(|e| {
                ApiError(Status::bad_request(format!(
                    "the JSON patch is invalid: {e}"
                )))
            })?,
        ),
        _ => None,
    };
    let kind = target.kind;
    let legacy = target.legacy;
    let updated = state
        .store
        .mutate(
            kind,
            target.ns_or_empty(),
            name_of(target),
            precondition,
            scope(target),
            move |cur| {
                let mut value = cur.to_value();
                match &json_patch {
                    Some(ops) => json_patch::patch(&mut value, ops).map_err(|e| {
                        Status::new(
                            Reason::Invalid,
                            format!("the JSON patch could not be applied: {e}"),
                        )
                    })?,
                    None => json_patch::merge(&mut value, &patch),
                }
                let mut next: Object = serde_json::from_value(value).map_err(|e| {
                    Status::new(
                        Reason::Invalid,
                        format!("the patched object is invalid: {e}"),
                    )
                })?;
                podspace_api::defaults::apply(kind, &mut next, legacy);
                validate(kind, &next)?;
                podspace_api::validation::validate_update(cur, &next)?;
                *cur = next;
                Ok(())
            },
        )
        .await?;
    Ok(ok_json(StatusCode::OK, &render(target, updated.to_value())))
}

async fn delete(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(body, state.config.max_body).await?;
    let precondition = delete_precondition(&bytes, headers)?;
    let (kind, ns, name) = (target.kind, target.ns_or_empty(), name_of(target));
    let deleted = match kind.kind {
        "Project" => {
            let project = state.store.delete_namespace(kind, name).await?;
            state.authn.forget_namespace(name);
            project
        }
        "User" => {
            let user = state.store.delete(kind, ns, name, precondition).await?;
            state.authn.forget(name).await?;
            user
        }
        "ServiceAccount" => {
            let sa = state.store.delete(kind, ns, name, precondition).await?;
            state
                .authn
                .forget(&podspace_api::auth::Principal::service_account(ns, name).name)
                .await?;
            sa
        }
        _ => state.store.delete(kind, ns, name, precondition).await?,
    };
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": deleted.metadata.name, "group": kind.group, "kind": kind.plural, "uid": deleted.metadata.uid},
    });
    Ok(ok_json(StatusCode::OK, &status))
}

/// DeleteOptions may carry `preconditions.resourceVersion`.
fn delete_precondition(bytes: &[u8], headers: &axum::http::HeaderMap) -> ApiResult<Option<i64>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if body_type(headers) != Some(BodyType::Json) {
        return Err(ApiError(Status::new(
            Reason::UnsupportedMediaType,
            "DeleteOptions must be application/json",
        )));
    }
    let options: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError(Status::bad_request(format!("invalid DeleteOptions: {e}"))))?;
    options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(|rv| {
            rv.parse().map_err(|_| {
                ApiError(Status::bad_request(format!(
                    "preconditions.resourceVersion: Invalid value: {rv:?}"
                )))
            })
        })
        .transpose()
}

/// Service account tokens, as Kubernetes' TokenRequest.
const SA_TOKEN_DEFAULT_SECS: i64 = 365 * 24 * 3600;
const SA_TOKEN_MAX_SECS: i64 = 10 * 365 * 24 * 3600;

async fn token_request(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (ns, name) = (target.ns_or_empty(), name_of(target));
    let sa_kind = &podspace_api::kinds::SERVICE_ACCOUNT;
    state.store.get(sa_kind, ns, name).await?;
    let mut seconds = SA_TOKEN_DEFAULT_SECS;
    if let Some(req) = read_optional_object(headers, body, state.config.max_body).await? {
        if let Some(s) = req.pointer("/spec/expirationSeconds") {
            seconds = s
                .as_i64()
                .filter(|s| (600..=SA_TOKEN_MAX_SECS).contains(s))
                .ok_or_else(|| {
                    ApiError(Status::new(
                        Reason::Invalid,
                        format!(
                            "spec.expirationSeconds: must be between 600 and {SA_TOKEN_MAX_SECS}"
                        ),
                    ))
                })?;
        }
    }
    let principal = podspace_api::auth::Principal::service_account(ns, name);
    let issued = state
        .authn
        .issue_token(
            &principal.name,
            std::time::Duration::from_secs(seconds as u64),
            "service account",
        )
        .await?;
    let expires = chrono::DateTime::from_timestamp(issued.expires_at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(ok_json(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"expirationSeconds": seconds},
            "status": {"token": issued.token, "expirationTimestamp": expires},
        }),
    ))
}

/// `POST deploymentconfigs/NAME/instantiate` with a DeploymentRequest:
/// a new version now (`psc rollout latest`), recorded like a triggered one.
async fn instantiate_dc(
    state: &AppState,
    target: &Target,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(req) = read_optional_object(headers, body, state.config.max_body).await? {
        if req
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k != "DeploymentRequest")
        {
            return Err(ApiError(Status::bad_request(
                "the body must be a DeploymentRequest",
            )));
        }
    }
    use podspace_api::model::{DeploymentConfig, ReplicationController, Resource};
    use podspace_deployments::rollout;
    let (dc, _) = state
        .store
        .mutate_spawning_as::<DeploymentConfig, _>(
            target.ns_or_empty(),
            name_of(target),
            None,
            UpdateScope::All,
            |dc| {
                let rc = rollout::deploy(dc, rollout::cause("Manual", "manual change"))
                    .to_object()
                    .map_err(|e| Status::internal(format!("encoding the deployment: {e}")))?;
                Ok(vec![(ReplicationController::KIND, rc)])
            },
        )
        .await?;
    let dc = serde_json::to_value(dc).unwrap_or_default();
    Ok(ok_json(StatusCode::CREATED, &render(target, dc)))
}
