//! HTTP plumbing shared by every route: the error type, authentication,
//! one log line and metrics per request, and body decoding.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use podspace_api::auth::Principal;
use podspace_api::store::StoreError;
use podspace_api::{Reason, Status};

use crate::app::AppState;

/// An API error: always answered as a Kubernetes `Status`.
#[derive(Debug)]
pub struct ApiError(pub Status);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError(s)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if matches!(
            e,
            StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::Config(_)
        ) {
            tracing::error!(error = %e, "store failure");
        }
        ApiError(e.to_status())
    }
}

impl From<podspace_api::auth::AuthError> for ApiError {
    fn from(e: podspace_api::auth::AuthError) -> Self {
        match e {
            podspace_api::auth::AuthError::BadCredentials => {
                ApiError(Status::new(Reason::Unauthorized, e.to_string()))
            }
            podspace_api::auth::AuthError::Store(s) => s.into(),
            podspace_api::auth::AuthError::Throttled(_) => {
                ApiError(Status::new(Reason::TooManyRequests, e.to_string()))
            }
            podspace_api::auth::AuthError::Hash(msg) => {
                tracing::error!(error = %msg, "password hashing failed");
                ApiError(Status::internal("an internal error occurred"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        status_response(&self.0)
    }
}

pub fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, serde_json::to_vec(status).unwrap_or_default());
    if code == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was not read; the connection is done.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"podspace\""),
        );
    }
    resp
}

pub fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The authenticated caller, put into request extensions by
/// [`authenticate`] and into response extensions for the access log.
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Principal>);

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves the bearer token. A request with a bad token is refused here;
/// one with no token goes on anonymously and is refused by the route unless
/// it is a health check or a login.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let principal = match bearer_token(req.headers()) {
        None => None,
        Some(token) => match state.authn.authenticate(token).await {
            Ok(Some(p)) => Some(p),
            Ok(None) => return status_response(&Status::unauthorized()),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    req.extensions_mut().insert(Caller(principal.clone()));
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(Caller(principal));
    resp
}

/// One structured log line and the metrics for every request.
pub async fn log_and_measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = redact_path(req.uri().path());
    let resource = crate::metrics::resource_label(req.uri().path());
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let user = resp
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.0.as_ref())
        .map(|p| p.name.as_str())
        .unwrap_or("-");
    state
        .metrics
        .observe_request(method.as_str(), &resource, status, elapsed);
    // Watches log when they end; their duration is the stream's lifetime.
    tracing::info!(
        method = %method,
        path = %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        user,
        "request"
    );
    resp
}

/// Webhook URLs carry their secret in the path; logs never show it.
pub fn redact_path(path: &str) -> String {
    match path.find("/webhooks/") {
        Some(i) => {
            let rest = &path[i + "/webhooks/".len()..];
            let tail = rest.find('/').map(|j| &rest[j..]).unwrap_or("");
            format!("{}/webhooks/***{tail}", &path[..i])
        }
        None => path.to_string(),
    }
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let down = state.controllers.down();
    if !down.is_empty() {
        let msg = format!("controllers not running: {}", down.join(", "));
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    match state.store.ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

pub async fn not_found(req: Request) -> Response {
    if req
        .extensions()
        .get::<Caller>()
        .is_none_or(|c| c.0.is_none())
    {
        return status_response(&Status::unauthorized());
    }
    status_response(&Status::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    ))
}

/// The media types a request body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    MergePatch,
    JsonPatch,
}

pub fn body_type(headers: &HeaderMap) -> Option<BodyType> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct
        .split(';')
        .next()
        .unwrap_or(ct)
        .trim()
        .to_ascii_lowercase();
    Some(match mime.as_str() {
        "application/json" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/json-patch+json" => BodyType::JsonPatch,
        _ => return None,
    })
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError(Status::new(
            Reason::RequestEntityTooLarge,
            format!("the request body is too large: the limit is {limit} bytes"),
        ))
    })
}

/// Checks the media type, reads at most `limit` bytes and decodes an object
/// body (JSON or YAML) to JSON: what every endpoint taking an object does.
pub async fn read_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<serde_json::Value> {
    let ty = body_type(headers).ok_or_else(|| {
        ApiError(Status::new(
            Reason::UnsupportedMediaType,
            "the body must be application/json or application/yaml",
        ))
    })?;
    let bytes = read_body(body, limit).await?;
    decode_object(&bytes, ty)
}

/// Like [`read_object`] for endpoints whose body may be left out
/// (TokenRequest, DeploymentRequest): `None` without one.
pub async fn read_optional_object(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<Option<serde_json::Value>> {
    let bytes = read_body(body, limit).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let ty = body_type(headers).ok_or_else(|| {
        ApiError(Status::new(
            Reason::UnsupportedMediaType,
            "the body must be application/json or application/yaml",
        ))
    })?;
    decode_object(&bytes, ty).map(Some)
}

/// [`read_object`] of a whole request.
pub async fn read_request_object(req: Request, limit: usize) -> ApiResult<serde_json::Value> {
    let (parts, body) = req.into_parts();
    read_object(&parts.headers, body, limit).await
}

/// Decodes an object body (JSON or YAML) to JSON.
pub fn decode_object(bytes: &[u8], kind: BodyType) -> ApiResult<serde_json::Value> {
    // Before any parser: a deep document costs them far more than its size.
    podspace_api::nesting::check(bytes, podspace_api::nesting::MAX_DEPTH).map_err(|e| {
        ApiError(Status::bad_request(format!(
            "the request body is refused: {e}"
        )))
    })?;
    let value: serde_json::Value = match kind {
        BodyType::Json => serde_json::from_slice(bytes).map_err(|e| bad_body("JSON", e))?,
        BodyType::Yaml => serde_yaml::from_slice(bytes).map_err(|e| bad_body("YAML", e))?,
        BodyType::MergePatch | BodyType::JsonPatch => {
            return Err(ApiError(Status::new(
                Reason::UnsupportedMediaType,
                "a patch media type is only accepted by PATCH",
            )))
        }
    };
    if !value.is_object() {
        return Err(ApiError(Status::bad_request(
            "the request body must be a JSON object",
        )));
    }
    Ok(value)
}

fn bad_body(format: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError(Status::bad_request(format!(
        "the request body is not valid {format}: {e}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secrets_are_redacted() {
        assert_eq!(
            redact_path(
                "/apis/build.openshift.io/v1/namespaces/p/buildconfigs/b/webhooks/s3cr3t/github"
            ),
            "/apis/build.openshift.io/v1/namespaces/p/buildconfigs/b/webhooks/***/github"
        );
        assert_eq!(redact_path("/healthz"), "/healthz");
    }
}
