//! Wiring: open the store, bootstrap the admin, start the event tail and
//! serve the API until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::{any, get, post};
use axum::Router;
use podspace_api::auth::{Authenticator, Authorizer};
use podspace_api::store::{redact_url, Store};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::tail::EventTail;
use crate::{bootstrap, http, rest};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub authn: Authenticator,
    pub authz: Authorizer,
    pub tail: EventTail,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(crate::metrics::render))
        .route("/oauth/token", post(rest::oauth::token))
        .route("/oauth/revoke", post(rest::oauth::revoke))
        .route("/apis", any(rest::dispatch))
        .route("/oapi", any(rest::dispatch))
        .route("/api", any(rest::dispatch))
        .route("/apis/{*path}", any(rest::dispatch))
        .route("/oapi/{*path}", any(rest::dispatch))
        .route("/api/{*path}", any(rest::dispatch))
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::log_and_measure,
        ))
        .with_state(state)
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.db)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&config.db)))?;
    tracing::info!(db = %redact_url(&config.db), backend = ?store.backend(), "store open");
    let authn = Authenticator::new(store.clone());
    bootstrap::admin(&store, &authn, config.admin_password.as_deref()).await?;

    let (shutdown_tx, shutdown) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let tail = EventTail::start(store.clone(), metrics.clone(), shutdown.clone()).await?;
    spawn_housekeeping(store.clone(), config.event_retention, shutdown.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API address {}", config.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "API listening");
    // The registry role arrives with the registry crate; the address is
    // already part of the configuration so deployments need not change.
    tracing::info!(addr = %config.registry_listen, "registry address configured (registry role not built into this version)");

    let state = AppState {
        store: store.clone(),
        authz: Authorizer::new(store.clone()),
        authn,
        tail,
        metrics,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
    };
    let mut wait_shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = wait_shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving the API")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Expired tokens and the oldest events are removed in the background.
fn spawn_housekeeping(store: Store, event_retention: i64, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::app::stopped(&mut shutdown) => return,
            }
            if let Err(e) = store
                .delete_expired_tokens(chrono::Utc::now().timestamp())
                .await
            {
                tracing::warn!(error = %e, "removing expired tokens failed");
            }
            match store.compact_events(event_retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "event log compacted"),
                Err(e) => tracing::warn!(error = %e, "event log compaction failed"),
            }
        }
    });
}

/// Resolves once shutdown has begun. (Holding `wait_for`'s guard across an
/// await would make a task non-`Send`, so it is dropped here.)
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
