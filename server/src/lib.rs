//! The `podspace` service as a library: configuration, wiring, the HTTP
//! API's routes and the build node's command. `main.rs` only parses the
//! command line; tests and benchmarks can start the same code.

mod admin;
mod app;
mod bootstrap;
pub mod config;
mod datadir;
mod http;
mod listener;
mod metrics;
pub mod node;
mod nodes;
mod rest;
mod tail;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Runs `podspace serve` until a shutdown signal.
pub fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    let config = config::Config::resolve(args)?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(app::serve(config))
}

/// Runs `podspace gc`: one registry garbage collection over the store and
/// blob storage the configuration names (safe beside a running service).
pub fn gc(args: config::ServeArgs, dry_run: bool, grace: Option<u64>) -> anyhow::Result<()> {
    let config = config::Config::resolve(args)?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = podspace_api::store::Store::open(&config.db)
            .await
            .with_context(|| format!("opening the store at {}", podspace_api::store::redact_url(&config.db)))?;
        let meta = podspace_registry::meta::RegistryStore::open(store.clone())
            .await
            .context("opening the registry's tables")?;
        let storage = app::open_storage(&config).await?;
        let collector = podspace_registry::gc::Collector::new(
            meta,
            store.clone(),
            storage,
            podspace_registry::gc::GcTotals::default(),
        );
        let opts = podspace_registry::gc::GcOptions {
            grace: grace.map(std::time::Duration::from_secs).unwrap_or(config.gc_grace),
            dry_run,
        };
        let report = collector.run(opts).await?;
        store.close().await;
        let verb = if dry_run { "would delete" } else { "deleted" };
        for m in &report.manifests {
            println!("{verb} manifest {}@{} ({} bytes)", m.repository, m.digest, m.size);
        }
        for b in &report.blobs {
            println!("{verb} blob {} ({} bytes)", b.digest, b.size);
        }
        for e in &report.errors {
            println!("error: {e}");
        }
        println!(
            "{} {} manifests and {} blobs, {} bytes; kept {} manifests and {} blobs ({} in use meanwhile) in {} ms",
            if dry_run { "would free" } else { "freed" },
            report.manifests.len(),
            report.blobs.len(),
            report.freed_bytes,
            report.kept_manifests,
            report.kept_blobs,
            report.spared,
            report.elapsed_ms
        );
        if report.errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{} blobs could not be deleted; the next run retries them", report.errors.len())
        }
    })
}

pub fn init_tracing(format: config::LogFormat) {
    let filter = EnvFilter::try_from_env("PODSPACE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // A closed stderr must not take the service down: tracing-subscriber
    // would report the failed write with eprintln!, which panics.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Text => builder.init(),
    }
}
