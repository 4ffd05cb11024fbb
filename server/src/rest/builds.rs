//! Build subresources: `buildconfigs/NAME/instantiate`,
//! `buildconfigs/NAME/instantiatebinary`, `builds/NAME/clone` and
//! `builds/NAME/log` (builds.md §1, §4, §9, §10).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use podspace_api::auth::{Principal, Verb};
use podspace_api::model::build::{GitSourceRevision, SourceControlUser, SourceRevision};
use podspace_api::model::{Build, BuildConfig, BuildRequest};
use podspace_api::{Reason, Status};
use podspace_builder::bookkeeping::BuildInput;
use podspace_builder::phase;
use podspace_builder::triggers::{self, Input};
use serde_json::json;

use super::{authorize, render, Query, Target};
use crate::app::AppState;
use crate::http::{json_response, read_optional_object, ApiError, ApiResult};

/// Whether `target` is one of the subresources served here.
pub fn serves(target: &Target) -> bool {
    matches!(
        (target.kind.kind, target.sub.as_deref()),
        ("BuildConfig", Some("instantiate" | "instantiatebinary"))
            | ("Build", Some("clone" | "log"))
    )
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    target: Target,
    query: Query,
    req: Request,
) -> ApiResult<Response> {
    let (Some(_), Some(name)) = (target.ns.as_deref(), target.name.clone()) else {
        return Err(ApiError(Status::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )));
    };
    let sub = target.sub.clone().unwrap_or_default();
    let verb = match (req.method(), sub.as_str()) {
        (&Method::GET, "log") => Verb::Get,
        (&Method::POST, "instantiate" | "instantiatebinary" | "clone") => Verb::Create,
        (m, _) => {
            return Err(ApiError(Status::new(
                Reason::MethodNotAllowed,
                format!("the server does not allow this method on the requested resource ({m})"),
            )))
        }
    };
    authorize(state, p, verb, &target).await?;
    match sub.as_str() {
        "instantiate" => {
            let (parts, body) = req.into_parts();
            let request = build_request(state, &parts.headers, body, "BuildRequest").await?;
            let build = triggers::instantiate(
                &state.store,
                target.ns_or_empty(),
                &name,
                &request,
                Input::Config,
            )
            .await?;
            Ok(created(&target, build))
        }
        "clone" => {
            let (parts, body) = req.into_parts();
            let request = build_request(state, &parts.headers, body, "BuildRequest").await?;
            clone(state, &target, &name, &request).await
        }
        "instantiatebinary" => binary(state, &target, &name, &query, req).await,
        _ => log(state, &target, &name, &query).await,
    }
}

fn created(target: &Target, build: Build) -> Response {
    let mut build = serde_json::to_value(&build).unwrap_or_default();
    // Render under the Build kind's apiVersion, whatever the path's kind.
    if let Some(b) = build.as_object_mut() {
        b.insert("kind".into(), json!("Build"));
    }
    let value = render(target, build);
    json_response(
        StatusCode::CREATED,
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

async fn build_request(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: Body,
    kind: &str,
) -> ApiResult<BuildRequest> {
    let request = read_optional_object(headers, body, state.config.max_body)
        .await?
        .unwrap_or_else(|| json!({}));
    let wrong = || ApiError(Status::bad_request(format!("the body must be a {kind}")));
    if !request.is_object() {
        return Err(wrong());
    }
    let request: BuildRequest = serde_json::from_value(request)
        .map_err(|e| ApiError(Status::bad_request(format!("the {kind} is invalid: {e}"))))?;
    if !request.kind.is_empty() && request.kind != kind {
        return Err(wrong());
    }
    Ok(request)
}

async fn clone(
    state: &AppState,
    target: &Target,
    name: &str,
    request: &BuildRequest,
) -> ApiResult<Response> {
    let old = state
        .store
        .get_as::<Build>(target.ns_or_empty(), name)
        .await?;
    let Some(bc) = old
        .metadata
        .annotations
        .get(podspace_builder::instantiate::BUILD_CONFIG)
        .cloned()
    else {
        return Err(ApiError(Status::bad_request(format!(
            "build {name} has no build configuration to number its clone from"
        ))));
    };
    let build = triggers::instantiate(
        &state.store,
        target.ns_or_empty(),
        &bc,
        request,
        Input::Clone(Box::new(old)),
    )
    .await?;
    Ok(created(target, build))
}

/// Streams the upload into blob storage (hashing and counting as it
/// goes), refusing it past the limit before anything is recorded; then
/// creates the build and records where its input lies.
async fn binary(
    state: &AppState,
    target: &Target,
    name: &str,
    query: &Query,
    req: Request,
) -> ApiResult<Response> {
    let limit = state.config.max_binary_input;
    let too_large = || {
        ApiError(Status::new(
            Reason::RequestEntityTooLarge,
            format!("the binary input is too large: the limit is {limit} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Refuse early (before reading the body) what instantiate would refuse.
    let bc = state
        .store
        .get_as::<BuildConfig>(target.ns_or_empty(), name)
        .await?;
    podspace_builder::instantiate::refuse_paused(&bc)?;
    let as_file = query.get("asFile").cloned().unwrap_or_default();
    podspace_builder::instantiate::check_as_file(&as_file)?;
    let revision = revision_from(query).map(Box::new);

    let upload_id = format!("build-input-{}", uuid::Uuid::new_v4().simple());
    let storage = &state.storage;
    let storage_err = |e: podspace_registry::storage::StorageError| {
        ApiError(Status::internal(format!("storing the binary input: {e}")))
    };
    let mut upload = storage
        .start_upload(&upload_id)
        .await
        .map_err(storage_err)?;
    let mut hasher = podspace_oci::digest::ResumableSha256::new();
    let mut size: u64 = 0;
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = storage.abort(upload).await;
                return Err(ApiError(Status::bad_request(format!(
                    "reading the upload: {e}"
                ))));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            let _ = storage.abort(upload).await;
            return Err(too_large());
        }
        hasher.update(&chunk);
        if let Err(e) = storage.write(&mut upload, chunk).await {
            let _ = storage.abort(upload).await;
            return Err(storage_err(e));
        }
    }
    let digest = hasher.finish();
    let location = storage.finish(upload, &digest).await.map_err(storage_err)?;
    let build = triggers::instantiate(
        &state.store,
        target.ns_or_empty(),
        name,
        &BuildRequest::default(),
        Input::Binary { as_file, revision },
    )
    .await;
    let build = match build {
        Ok(b) => b,
        Err(e) => {
            forget_input(state, &location).await;
            return Err(e.into());
        }
    };
    let input = BuildInput {
        uid: build.metadata.uid.clone(),
        location: location.clone(),
        size: size as i64,
        digest: digest.to_string(),
    };
    if let Err(e) = state
        .builds
        .set_build_input(&build.metadata.namespace, &build.metadata.name, &input)
        .await
    {
        forget_input(state, &location).await;
        return Err(e.into());
    }
    // The build may already be Pending: its input makes it leasable now.
    state.lease_wake.send_modify(|n| *n += 1);
    tracing::info!(namespace = %build.metadata.namespace, build = %build.metadata.name, bytes = size, "binary input stored");
    Ok(created(target, build))
}

/// Deletes stored input bytes, unless the registry holds the same blob.
pub async fn forget_input(state: &AppState, location: &str) {
    match state.registry_meta.blob_location_used(location).await {
        Ok(false) => {
            if let Err(e) = state.storage.delete(location).await {
                tracing::warn!(error = %e, "deleting a build input");
            }
        }
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "checking a build input"),
    }
}

fn revision_from(query: &Query) -> Option<SourceRevision> {
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    let commit = q("revision.commit");
    if commit.is_empty() && q("revision.message").is_empty() && q("revision.authorName").is_empty()
    {
        return None;
    }
    let user = |name: &str, email: &str| SourceControlUser {
        name: q(name),
        email: q(email),
        ..Default::default()
    };
    Some(SourceRevision {
        kind: "Git".into(),
        git: Some(GitSourceRevision {
            commit,
            message: q("revision.message"),
            author: Some(user("revision.authorName", "revision.authorEmail")),
            committer: Some(user("revision.committerName", "revision.committerEmail")),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `builds/NAME/log` (builds.md §9): waits for a queued build to start
/// (unless `nowait`), then streams what the node sent; with `follow`, until
/// the build ends.
async fn log(state: &AppState, target: &Target, name: &str, query: &Query) -> ApiResult<Response> {
    let flag = |k: &str| matches!(query.get(k).map(String::as_str), Some("true" | "1"));
    let (follow, nowait, previous) = (flag("follow"), flag("nowait"), flag("previous"));
    let version = match query.get("version") {
        Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
            ApiError(Status::bad_request(
                "version must be a positive build number",
            ))
        })?),
        None => None,
    };
    if previous && version.is_some() {
        return Err(ApiError(Status::bad_request(
            "previous and version cannot be used together",
        )));
    }
    let ns = target.ns_or_empty().to_string();
    // Subscribed before the first read: no commit can slip in unseen.
    let mut commits = state.store.subscribe_commits();
    let mut build = state.store.get_as::<Build>(&ns, name).await?;
    if previous || version.is_some() {
        let bc = build
            .metadata
            .annotations
            .get(podspace_builder::instantiate::BUILD_CONFIG)
            .cloned()
            .unwrap_or_default();
        let n = version.unwrap_or(phase::number(&build) - 1);
        build = state
            .store
            .get_as::<Build>(&ns, &format!("{bc}-{n}"))
            .await?;
    }
    let name = build.metadata.name.clone();
    let uid = build.metadata.uid.clone();
    // A queued build: wait (up to 30 s) until it runs.
    let waited_until = tokio::time::Instant::now() + Duration::from_secs(30);
    while matches!(phase::phase(&build), phase::NEW | phase::PENDING) {
        if nowait || tokio::time::Instant::now() >= waited_until {
            return Ok(text_response(Body::empty()));
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        commits.borrow_and_update();
        build = state.store.get_as::<Build>(&ns, &name).await?;
    }
    let first = state.builds.build_log(&ns, &name, &uid, 0).await?;
    let ph = phase::phase(&build).to_string();
    if first.is_empty() && matches!(ph.as_str(), phase::CANCELLED | phase::ERROR) {
        let why = if ph == phase::CANCELLED {
            "was cancelled"
        } else {
            "is in an error state"
        };
        return Err(ApiError(Status::bad_request(format!(
            "build {name} {why}. No logs are available."
        ))));
    }
    let store = state.store.clone();
    let builds = state.builds.clone();
    let mut notices = state.build_logs.subscribe();
    // The end comes as a commit (the node's final report), not as a log append.
    let mut commits = state.store.subscribe_commits();
    let mut shutdown = state.shutdown.clone();
    let stream = async_stream_log(move |tx| async move {
        let mut pos = 0i64;
        let mut chunks = first;
        loop {
            for (p, data) in chunks.drain(..) {
                if p < pos {
                    continue;
                }
                pos = p + data.len() as i64;
                if tx.send(Ok(bytes::Bytes::from(data))).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            // Ended before this read: everything the node sent is in.
            let ended = match store.get_as::<Build>(&ns, &name).await {
                Ok(b) => b.metadata.uid != uid || phase::is_terminal(phase::phase(&b)),
                Err(_) => true,
            };
            chunks = match builds.build_log(&ns, &name, &uid, pos).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            if !chunks.is_empty() {
                continue;
            }
            if ended {
                return;
            }
            tokio::select! {
                _ = notices.changed() => {}
                _ = commits.changed() => {}
                // Another replica's appends and phase changes.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = crate::app::stopped(&mut shutdown) => return,
            }
        }
    });
    Ok(text_response(Body::from_stream(stream)))
}

fn text_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .unwrap_or_default()
}

type Chunk = Result<bytes::Bytes, std::io::Error>;

/// A body stream fed by a task (the task ends when the client goes away).
fn async_stream_log<F, Fut>(f: F) -> impl futures_util::Stream<Item = Chunk>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Chunk>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
