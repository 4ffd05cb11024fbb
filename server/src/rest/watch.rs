//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines.
//!
//! The watcher subscribes to the event tail first, then replays the event
//! log from the requested resourceVersion, then follows the tail, skipping
//! what the replay already sent. The tail broadcasts every event in order, so
//! nothing falls between replay and live; if the watcher lags behind the
//! broadcast it replays from the log again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use podspace_api::auth::Principal;
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Event, EventType, Store, StoreError};
use podspace_api::Status;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{render, Query, Target};
use crate::app::AppState;
use crate::http::{ApiError, ApiResult};

const REPLAY_BATCH: i64 = 500;
const MAX_TIMEOUT: u64 = 3600;

struct Watcher {
    state: AppState,
    principal: Principal,
    target: Target,
    selector: LabelSelector,
    out: mpsc::Sender<Result<Bytes, std::io::Error>>,
    last: i64,
}

/// Ends the stream; the reason only matters for the log.
struct Closed;

pub async fn serve(
    state: &AppState,
    p: &Principal,
    target: Target,
    query: &Query,
    selector: LabelSelector,
) -> ApiResult<Response> {
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse::<i64>().map_err(|_| {
            ApiError(Status::bad_request(format!(
                "resourceVersion: Invalid value: {rv:?}"
            )))
        })?),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| {
                ApiError(Status::bad_request(format!(
                    "timeoutSeconds: Invalid value: {s:?}"
                )))
            })?
            .min(MAX_TIMEOUT),
        None => MAX_TIMEOUT,
    };
    let live = state.tail.subscribe();
    let (out, rx) = mpsc::channel(64);
    let mut watcher = Watcher {
        state: state.clone(),
        principal: p.clone(),
        target,
        selector,
        out,
        last: 0,
    };
    // Errors that happen before the stream starts are answered as a status.
    let initial = match from {
        Some(rv) => {
            state
                .store
                .events_since(rv, Some(watcher.target.kind.kind), None, 1)
                .await?;
            watcher.last = rv;
            Vec::new()
        }
        None => {
            let (items, rv) = state
                .store
                .list(
                    watcher.target.kind,
                    watcher.target.ns_or_empty(),
                    &watcher.selector,
                )
                .await?;
            watcher.last = rv;
            items
        }
    };
    let metrics = state.metrics.clone();
    tokio::spawn(async move {
        metrics.watches.inc();
        let _ = watcher
            .run(initial, live, Duration::from_secs(timeout))
            .await;
        metrics.watches.dec();
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

impl Watcher {
    async fn run(
        &mut self,
        initial: Vec<podspace_api::Object>,
        mut live: broadcast::Receiver<Arc<Event>>,
        timeout: Duration,
    ) -> Result<(), Closed> {
        for obj in initial {
            if self
                .visible(
                    &obj.metadata.namespace,
                    &obj.metadata.name,
                    &obj.metadata.annotations,
                )
                .await
            {
                self.send("ADDED", render(&self.target, obj.to_value()))
                    .await?;
            }
        }
        self.replay().await?;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut shutdown = self.state.shutdown.clone();
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Ok(e) => {
                        if e.rv > self.last {
                            self.last = e.rv;
                            self.deliver(&e).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => self.replay().await?,
                    Err(broadcast::error::RecvError::Closed) => return Err(Closed),
                },
                _ = &mut deadline => return Ok(()),
                _ = crate::app::stopped(&mut shutdown) => return Ok(()),
                _ = self.out.closed() => return Err(Closed),
            }
        }
    }

    /// Sends every logged event after `last`, in order.
    async fn replay(&mut self) -> Result<(), Closed> {
        loop {
            let ns = self
                .target
                .ns
                .as_deref()
                .filter(|_| self.target.kind.namespaced);
            let batch = match self
                .state
                .store
                .events_since(self.last, Some(self.target.kind.kind), ns, REPLAY_BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    self.error(e).await;
                    return Err(Closed);
                }
            };
            let n = batch.len() as i64;
            for e in batch {
                self.last = e.rv;
                self.deliver(&e).await?;
            }
            if n < REPLAY_BATCH {
                return Ok(());
            }
        }
    }

    async fn deliver(&mut self, e: &Event) -> Result<(), Closed> {
        if e.kind != self.target.kind.kind {
            return Ok(());
        }
        if let (true, Some(ns)) = (self.target.kind.namespaced, &self.target.ns) {
            if &e.namespace != ns {
                return Ok(());
            }
        }
        let Ok(value) = Store::event_value(e) else {
            tracing::error!(rv = e.rv, "undecodable event in the log");
            return Ok(());
        };
        let obj: podspace_api::Object = match serde_json::from_value(value.clone()) {
            Ok(o) => o,
            Err(_) => return Ok(()),
        };
        if !self.selector.matches(&obj.metadata.labels) {
            return Ok(());
        }
        if !self
            .visible(&e.namespace, &e.name, &obj.metadata.annotations)
            .await
        {
            return Ok(());
        }
        let ty = match e.event_type {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        };
        self.send(ty, render(&self.target, value)).await
    }

    /// Project watches show only the caller's projects (and the deletion of
    /// projects they requested, after which they are no longer a member).
    async fn visible(
        &self,
        _ns: &str,
        name: &str,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        if self.target.kind.kind != "Project" {
            return true;
        }
        let authz = &self.state.authz;
        let p = &self.principal;
        authz.is_member(p, name).await.unwrap_or(false)
            || annotations.get(podspace_api::projects::REQUESTER) == Some(&p.name)
    }

    async fn send(&self, ty: &str, object: Value) -> Result<(), Closed> {
        let mut line = serde_json::to_vec(&serde_json::json!({"type": ty, "object": object}))
            .map_err(|_| Closed)?;
        line.push(b'\n');
        self.out
            .send(Ok(Bytes::from(line)))
            .await
            .map_err(|_| Closed)
    }

    async fn error(&self, e: StoreError) {
        let status = e.to_status();
        let _ = self
            .out
            .send(Ok(Bytes::from(
                serde_json::to_vec(&serde_json::json!({"type": "ERROR", "object": status}))
                    .unwrap_or_default(),
            )))
            .await;
    }
}
