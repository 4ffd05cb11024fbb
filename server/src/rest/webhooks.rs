//! Webhook deliveries (webhooks.md): `POST …/buildconfigs/{bc}/webhooks/
//! {secret}/{type}`, unauthenticated but for the URL secret (and, when the
//! trigger asks for it, the provider's signature), and
//! `GET …/buildconfigs/{bc}/webhooks`, the config's recent deliveries. The
//! handler reads, checks, claims the delivery id (a replay answers what
//! the first delivery got), calls `podspace_webhooks` to decide and the
//! one instantiate path to build. The secret is never logged: the access
//! log redacts the path segment and nothing here prints it.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use podspace_api::auth::{Principal, Verb};
use podspace_api::model::{Build, Secret};
use podspace_api::store::{Claim, DeliveryRecord, StoreError};
use podspace_api::{Reason, Status};
use podspace_builder::triggers::{self, Input};
use podspace_webhooks::request::{decide, Decision};
use podspace_webhooks::trigger::{self, Provider, WebHook, SECRET_KEY, SIGNATURE_KEY};
use podspace_webhooks::{signature, HookError};
use serde_json::{json, Value};

use super::{authorize, render, Target};
use crate::app::AppState;
use crate::http::{json_response, status_response, ApiError, ApiResult};

/// A claim older than this was left by a handler that died.
const STALE_CLAIM_SECONDS: i64 = 60;
/// How long a copy of a delivery waits for the first copy's answer.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// Deliveries `GET …/webhooks` returns.
const HISTORY: i64 = 20;

/// Whether `target` is a webhook route.
pub fn serves(target: &Target) -> bool {
    target.kind.kind == "BuildConfig"
        && target
            .sub
            .as_deref()
            .is_some_and(|s| s == "webhooks" || s.starts_with("webhooks/"))
}

fn status(code: u16, reason: Reason, message: impl Into<String>) -> Status {
    let mut s = Status::new(reason, message);
    s.code = code;
    s
}

fn unauthorized(provider: Provider, config: &str) -> Status {
    let e = HookError::Unauthorized {
        provider: provider.path().into(),
        config: config.into(),
    };
    Status::new(Reason::Unauthorized, e.to_string())
}

/// A `Warning: 299 - "…"` value: visible ASCII only.
fn warning(msg: &str) -> Option<HeaderValue> {
    let clean: String = msg
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!("299 - \"{clean}\"")).ok()
}

/// The provider's id of this delivery, safe to store and show.
fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let raw = provider
        .delivery_headers()
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))?;
    let id: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.:{}".contains(*c))
        .take(128)
        .collect();
    (!id.is_empty()).then(|| format!("{}:{id}", provider.path()))
}

/// The i-th trigger's URL secret: inline, or `WebHookSecretKey` of its Secret.
async fn url_secret(state: &AppState, ns: &str, hook: &WebHook) -> ApiResult<Option<Vec<u8>>> {
    if let Some(s) = hook.secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    match &hook.secret_reference {
        Some(r) if !r.name.is_empty() => secret_value(state, ns, &r.name, SECRET_KEY).await,
        _ => Ok(None),
    }
}

async fn secret_value(
    state: &AppState,
    ns: &str,
    name: &str,
    key: &str,
) -> ApiResult<Option<Vec<u8>>> {
    let secret = state.store.find_as::<Secret>(ns, name).await?;
    Ok(secret.and_then(|s| s.bytes(key)))
}

/// What a delivery is answered with.
enum Reply {
    /// 200 and the Build.
    Build(Box<Build>),
    /// 200, nothing built, and why (a `Status` of `Success`).
    Nothing(String),
    Failure(Status),
}

/// What one delivery came to, for the metrics, the log and the record.
struct Answer {
    reply: Reply,
    outcome: &'static str,
    note: String,
    warnings: Vec<String>,
}

impl Answer {
    fn refused(status: Status, note: &str) -> Answer {
        Answer::failure(status, "refused", note)
    }

    fn failure(status: Status, outcome: &'static str, note: &str) -> Answer {
        Answer {
            reply: Reply::Failure(status),
            outcome,
            note: note.into(),
            warnings: Vec::new(),
        }
    }

    fn code(&self) -> u16 {
        match &self.reply {
            Reply::Failure(s) => s.code,
            _ => 200,
        }
    }

    fn build_name(&self) -> Option<String> {
        match &self.reply {
            Reply::Build(b) => Some(b.metadata.name.clone()),
            _ => None,
        }
    }
}

pub async fn handle(
    state: &AppState,
    principal: Option<&Principal>,
    target: Target,
    req: Request,
) -> Response {
    let result = if target.sub.as_deref() == Some("webhooks") {
        history(state, principal, &target, req.method()).await
    } else {
        Ok(deliver(state, &target, req).await)
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET buildconfigs/NAME/webhooks`: the config's recent deliveries.
async fn history(
    state: &AppState,
    principal: Option<&Principal>,
    target: &Target,
    method: &Method,
) -> ApiResult<Response> {
    let p = principal.ok_or_else(|| ApiError(Status::unauthorized()))?;
    if method != Method::GET {
        return Err(ApiError(status(
            405,
            Reason::MethodNotAllowed,
            format!("the server does not allow this method on the requested resource ({method})"),
        )));
    }
    authorize(state, p, Verb::Get, target).await?;
    let (ns, name) = (
        target.ns_or_empty(),
        target.name.as_deref().unwrap_or_default(),
    );
    let bc_kind = &podspace_api::kinds::BUILD_CONFIG;
    state.store.get(bc_kind, ns, name).await?;
    // Refusals not written yet count too: newest first, like the rows.
    let mut records = state.webhook_refusals.waiting(ns, name);
    records.reverse();
    records.extend(state.store.deliveries(ns, name, HISTORY).await?);
    records.sort_by_key(|r| std::cmp::Reverse(r.received_at));
    records.truncate(HISTORY as usize);
    let items: Vec<Value> = records
        .into_iter()
        .map(|d| {
            json!({"id": d.delivery, "provider": d.provider,
                   "received": chrono::DateTime::from_timestamp(d.received_at, 0).map(|t| t.to_rfc3339()),
                   "code": d.code, "outcome": d.outcome, "build": d.build, "done": d.done})
        })
        .collect();
    let body =
        json!({"kind": "WebHookDeliveryList", "apiVersion": "podspace.io/v1", "items": items});
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

async fn deliver(state: &AppState, target: &Target, req: Request) -> Response {
    if req.method() != Method::POST {
        return status_response(&status(
            405,
            Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource ({})",
                req.method()
            ),
        ));
    }
    let parts: Vec<&str> = target
        .sub
        .as_deref()
        .unwrap_or_default()
        .split('/')
        .collect();
    let [_, secret, kind] = parts[..] else {
        return status_response(&Status::bad_request(
            "unexpected hook subpath: use webhooks/<secret>/<type>",
        ));
    };
    let Some(provider) = Provider::from_path(kind) else {
        return status_response(&Status::new(
            Reason::NotFound,
            format!("buildconfighook.build.openshift.io {kind:?} not found: use github, gitlab, bitbucket or generic"),
        ));
    };
    let (ns, name) = (
        target.ns_or_empty().to_string(),
        target.name.clone().unwrap_or_default(),
    );
    let max = state.config.limits.webhook_max_body;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(state, provider, max);
    }
    let answer = match handle_delivery(state, provider, secret, &ns, &name, req).await {
        Ok(a) => a,
        Err(ApiError(s)) if s.code == 413 => return too_large(state, provider, max),
        Err(ApiError(s)) => {
            let outcome = if s.code >= 500 { "failed" } else { "invalid" };
            let note = s.message.clone();
            Answer::failure(s, outcome, &note)
        }
    };
    state
        .metrics
        .observe_webhook(provider.path(), answer.outcome);
    tracing::info!(
        namespace = %ns, config = %name, provider = provider.path(),
        code = answer.code(), outcome = answer.outcome, note = %answer.note,
        "webhook delivery"
    );
    let mut resp = match answer.reply {
        Reply::Build(build) => {
            let mut value = serde_json::to_value(&*build).unwrap_or_default();
            if let Some(b) = value.as_object_mut() {
                b.insert("kind".into(), json!("Build"));
            }
            json_response(
                StatusCode::OK,
                serde_json::to_vec(&render(target, value)).unwrap_or_default(),
            )
        }
        Reply::Nothing(message) => {
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "message": message, "code": 200});
            json_response(
                StatusCode::OK,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        Reply::Failure(s) => status_response(&s),
    };
    for w in &answer.warnings {
        if let Some(v) = warning(w) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn too_large(state: &AppState, provider: Provider, max: usize) -> Response {
    state.metrics.observe_webhook(provider.path(), "invalid");
    status_response(&Status::new(
        Reason::RequestEntityTooLarge,
        format!("the delivery is larger than {max} bytes"),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn handle_delivery(
    state: &AppState,
    provider: Provider,
    secret: &str,
    ns: &str,
    name: &str,
    req: Request,
) -> ApiResult<Answer> {
    let bc_kind = &podspace_api::kinds::BUILD_CONFIG;
    let denied = unauthorized(provider, name);
    let bc = match state.store.get(bc_kind, ns, name).await {
        Ok(bc) => bc,
        Err(StoreError::NotFound { .. }) => return Ok(Answer::refused(denied, "no such config")),
        Err(e) => return Err(e.into()),
    };
    let spec = bc.body.get("spec").cloned().unwrap_or(Value::Null);
    let hooks = trigger::webhooks(&spec, provider);
    let mut secrets = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        secrets.push(url_secret(state, ns, hook).await?);
    }
    let Some(index) = trigger::matching(secret, &secrets) else {
        record_refused(
            state,
            ns,
            name,
            provider,
            "refused: the URL secret matches no trigger",
        );
        return Ok(Answer::refused(denied, "wrong secret"));
    };
    let hook = &hooks[index];
    let (parts, body) = req.into_parts();
    let limits = &state.config.limits;
    let body = match tokio::time::timeout(
        limits.webhook_read_timeout,
        axum::body::to_bytes(body, limits.webhook_max_body),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(ApiError(status(
                413,
                Reason::RequestEntityTooLarge,
                "too large",
            )))
        }
        Err(_) => {
            return Err(ApiError(status(
                408,
                Reason::BadRequest,
                "the delivery's body did not arrive in time",
            )))
        }
    };
    if let Some(sig) = &hook.signature_secret_ref {
        let key = sig.key.as_deref().unwrap_or(SIGNATURE_KEY);
        let secret_key = secret_value(state, ns, &sig.name, key).await?;
        let checked = match secret_key {
            Some(k) => signature::verify(provider, &parts.headers, &body, &k),
            None => Err(signature::SignatureError::Wrong),
        };
        if let Err(e) = checked {
            record_refused(state, ns, name, provider, &format!("refused: {e}"));
            return Ok(Answer::refused(denied, &e.to_string()));
        }
    }

    // Verified. A delivery id is claimed once: a replay answers the same.
    let now = chrono::Utc::now().timestamp();
    let id = delivery_id(provider, &parts.headers);
    let key = match &id {
        Some(id) => match claim(state, ns, name, id, provider, now).await? {
            Some(done) => return replayed(state, ns, done).await,
            None => id.clone(),
        },
        None => {
            let key = format!("{}:-{}", provider.path(), uuid::Uuid::new_v4().simple());
            let fresh = state
                .store
                .claim_delivery(ns, name, &key, provider.path(), now, STALE_CLAIM_SECONDS)
                .await?;
            debug_assert_eq!(fresh, Claim::Mine);
            key
        }
    };
    let answer = match state.webhook_rate.take(ns, name) {
        Err(wait) => {
            // Not handled: a retry of it later is a new attempt.
            state.store.release_delivery(ns, name, &key).await?;
            return Ok(Answer::failure(
                Status::new(
                    Reason::TooManyRequests,
                    format!(
                        "too many deliveries for {name:?}: retry in {:.0} s",
                        wait.ceil()
                    ),
                ),
                "limited",
                "rate limited",
            ));
        }
        Ok(()) => {
            decide_and_build(
                state,
                provider,
                ns,
                name,
                &spec,
                hook,
                &parts.headers,
                &body,
            )
            .await
        }
    };
    let (code, note) = (answer.code(), answer.note.clone());
    let build_name = answer.build_name();
    state
        .store
        .finish_delivery(ns, name, &key, code, &note, build_name.as_deref())
        .await?;
    Ok(answer)
}

/// Claims delivery `id`; `Some` with the first copy's record when it was
/// handled already (waiting a little for a copy being handled now).
async fn claim(
    state: &AppState,
    ns: &str,
    name: &str,
    id: &str,
    provider: Provider,
    now: i64,
) -> ApiResult<Option<DeliveryRecord>> {
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    let mut claim = state
        .store
        .claim_delivery(ns, name, id, provider.path(), now, STALE_CLAIM_SECONDS)
        .await?;
    loop {
        match claim {
            Claim::Mine => return Ok(None),
            Claim::Done(rec) => return Ok(Some(rec)),
            Claim::InFlight if tokio::time::Instant::now() >= deadline => {
                return Err(ApiError(status(
                    409,
                    Reason::Conflict,
                    "this delivery is being handled by another request; retry later",
                )))
            }
            Claim::InFlight => {
                // The copy being handled may be on another replica: its row
                // is the only signal, so it is polled (bounded above).
                tokio::time::sleep(Duration::from_millis(20)).await;
                claim = match state.store.delivery(ns, name, id).await? {
                    Some(rec) if rec.done => Claim::Done(rec),
                    Some(_) => Claim::InFlight,
                    None => {
                        state
                            .store
                            .claim_delivery(ns, name, id, provider.path(), now, STALE_CLAIM_SECONDS)
                            .await?
                    }
                };
            }
        }
    }
}

/// The answer a replayed delivery gets: the first one's build, or its Status.
async fn replayed(state: &AppState, ns: &str, rec: DeliveryRecord) -> ApiResult<Answer> {
    let build = match &rec.build {
        Some(b) => state.store.get_as::<Build>(ns, b).await.ok().map(Box::new),
        None => None,
    };
    let code = u16::try_from(rec.code).unwrap_or(500);
    let reply = match (build, code) {
        (Some(b), _) => Reply::Build(b),
        (None, 200) => Reply::Nothing(rec.outcome.clone()),
        (None, code) => {
            let reason = match code {
                400 => Reason::BadRequest,
                _ => Reason::InternalError,
            };
            Reply::Failure(status(code, reason, rec.outcome.clone()))
        }
    };
    Ok(Answer {
        reply,
        outcome: "replayed",
        note: format!("replay of {}", rec.delivery),
        warnings: vec![format!(
            "delivery {} was handled before: {}",
            rec.delivery, rec.outcome
        )],
    })
}

#[allow(clippy::too_many_arguments)]
async fn decide_and_build(
    state: &AppState,
    provider: Provider,
    ns: &str,
    name: &str,
    spec: &Value,
    hook: &WebHook,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let event = match podspace_webhooks::parse(provider, headers, body) {
        Ok(e) => e,
        Err(e) => {
            return Answer::failure(
                Status::bad_request(e.to_string()),
                "invalid",
                &e.to_string(),
            )
        }
    };
    match decide(provider, name, spec, hook, event) {
        Decision::Skip(why) => Answer {
            reply: Reply::Nothing(why.clone()),
            outcome: "skipped",
            note: why,
            warnings: Vec::new(),
        },
        Decision::Build { request, warnings } => {
            let request = match serde_json::to_value(&*request).and_then(serde_json::from_value) {
                Ok(r) => r,
                Err(e) => {
                    let status = Status::internal(format!("encoding the build request: {e}"));
                    return Answer::failure(status, "error", "could not encode the build request");
                }
            };
            match triggers::instantiate(&state.store, ns, name, &request, Input::Config).await {
                Ok(build) => Answer {
                    note: format!("build {}", build.metadata.name),
                    reply: Reply::Build(Box::new(build)),
                    outcome: "build",
                    warnings,
                },
                Err(e) => {
                    let msg = format!("could not generate a build: {}", e.to_status().message);
                    Answer {
                        reply: Reply::Failure(Status::internal(msg.clone())),
                        outcome: "failed",
                        note: msg,
                        warnings,
                    }
                }
            }
        }
    }
}

/// A refused delivery to an existing config is recorded (without an id of
/// the sender's: refusals are not replays), in the next batch.
fn record_refused(state: &AppState, ns: &str, name: &str, provider: Provider, why: &str) {
    let rec = DeliveryRecord {
        delivery: format!(
            "{}:refused-{}",
            provider.path(),
            uuid::Uuid::new_v4().simple()
        ),
        provider: provider.path().into(),
        received_at: chrono::Utc::now().timestamp(),
        done: true,
        code: 401,
        outcome: why.into(),
        build: None,
    };
    state.webhook_refusals.push(ns, name, rec);
}
