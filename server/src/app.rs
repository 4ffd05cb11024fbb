//! Wiring: open the store, bootstrap the admin, start the event tail and
//! serve the API until SIGINT/SIGTERM.

use podspace_runtime::Supervisor;
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
use crate::{bootstrap, datadir, http, listener, rest};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub authn: Authenticator,
    pub authz: Authorizer,
    pub tail: EventTail,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub registry_tokens: Arc<podspace_registry::token::TokenService>,
    /// `host:port` of the registry as clients see it.
    pub registry_host: String,
    /// Blob storage, shared with the registry (binary build input lives there too).
    pub storage: Arc<dyn podspace_registry::storage::BlobStorage>,
    /// The registry's metadata (whether a blob lies at a location).
    pub registry_meta: podspace_registry::meta::RegistryStore,
    /// Build leases, log chunks and binary inputs.
    pub builds: podspace_builder::bookkeeping::BuildStore,
    /// Bumped on every build log append: wakes `log?follow=true` readers.
    pub build_logs: Arc<watch::Sender<u64>>,
    /// Offers builds to nodes and takes their reports.
    pub leases: Arc<podspace_builder::leases::Leases>,
    /// Wakes lease polls for what is not a commit (a binary input stored).
    pub lease_wake: Arc<watch::Sender<u64>>,
    /// The per-BuildConfig rate of webhook deliveries.
    pub webhook_rate: Arc<rest::webhook_rate::WebhookRate>,
    /// Refused webhook deliveries waiting to be recorded.
    pub webhook_refusals: Arc<rest::webhook_refusals::WebhookRefusals>,
    /// Registry garbage collection, on demand (`/admin/registry/gc`).
    pub collector: podspace_registry::gc::Collector,
    /// The supervised controllers (readiness, metrics).
    pub controllers: Supervisor,
    pub shutdown: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::nodes::routes())
        .merge(crate::admin::routes())
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(crate::metrics::render))
        .route("/oauth/token", post(rest::oauth::token))
        .route("/oauth/revoke", post(rest::oauth::revoke))
        .route("/v2/token", get(registry_token))
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
    let mut key_files = datadir::sqlite_files(&config.db);
    key_files.push(config.registry_token_key.clone());
    datadir::secure(&config.data_dir, &key_files)?;
    let store = Store::open(&config.db)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&config.db)))?;
    tracing::info!(db = %redact_url(&config.db), backend = ?store.backend(), "store open");
    let authn = Authenticator::new(store.clone());
    bootstrap::admin(&store, &authn, config.admin_password.as_deref()).await?;

    // The controllers' lookups, rebuilt from the objects at every start.
    store
        .register_indexer(Arc::new(podspace_builder::triggers::ImageTriggerIndex))
        .await?;
    store
        .register_indexer(Arc::new(
            podspace_deployments::controller::ImageTriggerIndex,
        ))
        .await?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let controllers = Supervisor::new(
        store.clone(),
        datadir::replica_id(&config.data_dir)?,
        config.controller_lease,
        shutdown.clone(),
    );
    let gc_totals = podspace_registry::gc::GcTotals::default();
    let metrics = Arc::new(Metrics::new(&controllers, &gc_totals));
    let tail = EventTail::start(store.clone(), metrics.clone(), shutdown.clone()).await?;
    spawn_housekeeping(store.clone(), config.event_retention, shutdown.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API address {}", config.listen))?;
    let api_addr = listener.local_addr()?;
    let registry_listener = tokio::net::TcpListener::bind(config.registry_listen)
        .await
        .with_context(|| format!("binding the registry address {}", config.registry_listen))?;
    let registry_addr = registry_listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{api_addr}"));
    let public_host = config
        .registry_public_host
        .clone()
        .unwrap_or_else(|| registry_addr.to_string());

    let authz = Authorizer::new(store.clone());
    let key = datadir::token_key(&store, &config.registry_token_key).await?;
    let registry_tokens = Arc::new(podspace_registry::token::TokenService::new(
        &key,
        "podspace-registry",
        &format!("{public_url}/v2/token"),
        Duration::from_secs(300),
    ));
    let storage = open_storage(&config).await?;
    tracing::info!(driver = storage.name(), "registry storage");
    let registry_meta = podspace_registry::meta::RegistryStore::open(store.clone())
        .await
        .context("opening the registry's tables")?;
    let registry = podspace_registry::Registry::new(
        store.clone(),
        registry_meta.clone(),
        authn.clone(),
        authz.clone(),
        storage.clone(),
        registry_tokens.clone(),
        podspace_registry::RegistryConfig {
            public_host: public_host.clone(),
            max_manifest_bytes: 4 << 20,
            upload_ttl: config.upload_ttl,
            upload_limits: config.limits.uploads,
            gc_grace: config.gc_grace,
        },
    );
    spawn_upload_expiry(registry.clone(), shutdown.clone());
    let collector = podspace_registry::gc::Collector::new(
        registry_meta.clone(),
        store.clone(),
        storage.clone(),
        gc_totals,
    );
    if let Some(every) = config.gc_interval {
        controllers.spawn(podspace_registry::gc::ScheduledGc {
            collector: collector.clone(),
            every,
            grace: config.gc_grace,
        });
    }
    controllers.spawn(podspace_imagestreams::controller::Imports::new(
        config.import_interval,
    ));
    controllers.spawn(podspace_builder::triggers::BuildTriggers);
    controllers.spawn(podspace_deployments::controller::DeploymentTriggers);
    let builds = podspace_builder::bookkeeping::BuildStore::open(store.clone())
        .await
        .context("opening the build tables")?;
    controllers.spawn(podspace_builder::controller::BuildController::new(
        config.build_lease,
        builds.clone(),
    ));
    let node_token = if config.node_slots > 0 {
        Some(bootstrap::embedded_node(&store, &authn).await?)
    } else {
        None
    };

    let config_limits = config.limits.clone();
    let leases = Arc::new(podspace_builder::leases::Leases::new(
        store.clone(),
        builds.clone(),
        authn.clone(),
        podspace_builder::leases::LeaseTerms {
            lease: config.build_lease,
            registry: public_host.clone(),
            max_context_bytes: config.limits.max_binary_context,
            max_context_entries: config.limits.max_binary_entries,
            allow_root_assemble: config.s2i_allow_root,
        },
    ));
    let state = AppState {
        store: store.clone(),
        authz,
        authn,
        tail,
        metrics,
        config: Arc::new(config),
        registry_tokens,
        registry_host: public_host.clone(),
        storage: storage.clone(),
        registry_meta,
        collector,
        builds,
        build_logs: Arc::new(watch::channel(0).0),
        leases,
        lease_wake: Arc::new(watch::channel(0).0),
        webhook_rate: Arc::new(rest::webhook_rate::WebhookRate::new(
            config_limits.webhook_rate,
            config_limits.webhook_burst,
        )),
        webhook_refusals: Arc::default(),
        controllers,
        shutdown: shutdown.clone(),
    };
    spawn_build_sweep(state.clone());
    spawn_refusal_flush(state.clone());
    if let Some(token) = node_token {
        let node = podspace_node::NodeConfig {
            api: format!("http://{api_addr}"),
            token,
            name: bootstrap::EMBEDDED_NODE.into(),
            slots: state.config.node_slots,
            network: state.config.build_network.clone(),
            classic_builder: false,
            work_dir: state.config.data_dir.join("builds"),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = podspace_node::run(node, stop).await {
                tracing::warn!(error = %e, "the embedded build node is not running; builds wait for another node");
            }
        });
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    let registry_app = registry
        .router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::log_and_measure,
        ));
    tracing::info!(addr = %api_addr, %public_url, "API listening");
    tracing::info!(addr = %registry_addr, %public_host, "registry listening");
    let l = &state.config.limits;
    let limits = listener::ConnectionLimits {
        header_timeout: l.header_timeout,
        body_idle_timeout: l.body_idle_timeout,
        per_ip: l.max_connections_per_ip,
        total: l.max_connections,
    };
    let metrics = state.metrics.clone();
    let refusals = state.webhook_refusals.clone();
    let api = listener::serve(
        listener,
        router(state),
        limits,
        metrics.clone(),
        shutdown.clone(),
    );
    let reg = listener::serve(
        registry_listener,
        registry_app,
        limits,
        metrics,
        shutdown.clone(),
    );
    let (a, r) = tokio::join!(api, reg);
    a.context("serving the API")?;
    r.context("serving the registry")?;
    // Requests are over: what they refused is written before the store closes.
    if let Err(e) = refusals.flush(&store).await {
        tracing::warn!(error = %e, "recording refused webhook deliveries failed");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The registry's blob storage driver the configuration names.
pub async fn open_storage(
    config: &Config,
) -> anyhow::Result<Arc<dyn podspace_registry::storage::BlobStorage>> {
    Ok(match &config.storage {
        crate::config::Storage::Fs => Arc::new(
            podspace_registry::storage::fs::FsStorage::open(config.data_dir.join("registry"))
                .await
                .context("opening the registry's blob storage")?,
        ),
        crate::config::Storage::S3(s3) => {
            Arc::new(podspace_registry::storage::s3::S3Storage::new(s3.clone()))
        }
    })
}

pub async fn shutdown_signal() {
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

async fn registry_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    podspace_registry::token::endpoint(
        &state.registry_tokens,
        &state.authn,
        &state.authz,
        &headers,
        &query,
        client.map(|c| c.0 .0.ip()),
    )
    .await
}

fn spawn_upload_expiry(registry: podspace_registry::Registry, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        // Often enough that an upload is gone within a minute of its TTL.
        let every =
            (registry.upload_ttl() / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(&mut shutdown) => return,
            }
            match registry.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "idle blob uploads removed"),
                Err(e) => tracing::warn!(error = ?e, "expiring blob uploads failed"),
            }
        }
    });
}

/// Logs, leases and binary inputs of deleted builds, and the webhook
/// deliveries of deleted configs, are removed.
fn spawn_build_sweep(state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(&mut shutdown) => return,
            }
            match state.builds.sweep_build_leftovers(3600).await {
                Ok(inputs) => {
                    for input in inputs {
                        crate::rest::forget_build_input(&state, &input.location).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sweeping deleted builds' leftovers failed"),
            }
            if let Err(e) = state
                .store
                .sweep_deliveries(chrono::Utc::now().timestamp())
                .await
            {
                tracing::warn!(error = %e, "sweeping deleted configs' webhook deliveries failed");
            }
        }
    });
}

/// Refused webhook deliveries are written once a second (and, when the
/// server stops, once more after the last request).
fn spawn_refusal_flush(state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(&mut shutdown) => return,
            }
            if let Err(e) = state.webhook_refusals.flush(&state.store).await {
                tracing::warn!(error = %e, "recording refused webhook deliveries failed");
            }
        }
    });
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

pub use podspace_api::store::stopped;
