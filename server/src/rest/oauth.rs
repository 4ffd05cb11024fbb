//! Token issue and revocation, in OAuth 2.0's shapes: the password grant
//! (RFC 6749 §4.3) and token revocation (RFC 7009). Errors use OAuth's
//! `{"error": ..., "error_description": ...}` format.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::Engine;
use serde_json::json;

use crate::app::AppState;
use crate::http::{bearer_token, json_response, read_body};

const FORM_LIMIT: usize = 16 * 1024;

fn oauth_error(code: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = json_response(
        code,
        serde_json::to_vec(&json!({"error": error, "error_description": description}))
            .unwrap_or_default(),
    );
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"podspace\""),
        );
    }
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pw) = text.split_once(':')?;
    Some((user.to_string(), pw.to_string()))
}

async fn form(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Vec<(String, String)>, Response> {
    let bytes = read_body(body, FORM_LIMIT).await.map_err(|_| {
        oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is too large",
        )
    })?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{}", String::from_utf8_lossy(&bytes))
            .parse()
            .map_err(|_| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "malformed form body",
                )
            })?,
    )
    .map(|q| q.0)
    .map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed form body",
        )
    })
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /oauth/token`: user name and password (form fields, or HTTP Basic)
/// for a bearer token.
pub async fn token(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let client = client.map(|c| c.0 .0.ip());
    let form = match form(&headers, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (user, password) = match (
        basic_credentials(&headers),
        field(&form, "username"),
        field(&form, "password"),
    ) {
        (_, Some(u), Some(p)) => (u.to_string(), p.to_string()),
        (Some(creds), _, _) => creds,
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "username and password are required",
            )
        }
    };
    if let Some(grant) = field(&form, "grant_type") {
        if grant != "password" {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the password grant is supported",
            );
        }
    }
    match state
        .authn
        .login(&user, &password, client, state.config.token_ttl)
        .await
    {
        Ok(issued) => {
            let body = json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": state.config.token_ttl.as_secs(),
            });
            let mut resp = json_response(
                StatusCode::OK,
                serde_json::to_vec(&body).unwrap_or_default(),
            );
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(podspace_api::auth::AuthError::BadCredentials) => {
            tracing::info!(user = %user, "login refused");
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "invalid username or password",
            )
        }
        Err(podspace_api::auth::AuthError::Throttled(wait)) => {
            state.metrics.logins_throttled.inc();
            tracing::info!(user = %user, "login throttled");
            let mut resp = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                &format!(
                    "too many failed logins: try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "an internal error occurred",
            )
        }
    }
}

/// `POST /oauth/revoke`: revokes the `token` form field, or the bearer
/// token of the request itself (logout). Answers 200 either way (RFC 7009).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let form = match form(&headers, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let token = field(&form, "token")
        .or_else(|| bearer_token(&headers))
        .map(str::to_string);
    let Some(token) = token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no token to revoke",
        );
    };
    if let Err(e) = state.authn.revoke(&token).await {
        tracing::error!(error = %e, "token revocation failed");
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an internal error occurred",
        );
    }
    json_response(StatusCode::OK, "{}")
}
