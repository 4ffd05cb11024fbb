//! The `podspace` service as a library: configuration, wiring, the HTTP
//! API's routes and the build node's command. `main.rs` only parses the
//! command line; tests and benchmarks can start the same code.

mod admin;
mod app;
mod bootstrap;
pub mod config;
mod datadir;
mod gc_command;
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
    runtime()?.block_on(app::serve(config))
}

/// Runs `podspace gc`: one registry garbage collection over the store and
/// blob storage the configuration names — beside running replicas on
/// PostgreSQL; SQLite admits one process, so there the service is stopped
/// first (or `POST /admin/registry/gc` asks the running one).
pub fn gc(args: config::ServeArgs, dry_run: bool, grace: Option<u64>) -> anyhow::Result<()> {
    let config = config::Config::resolve(args)?;
    init_tracing(config.log_format);
    runtime()?.block_on(gc_command::once(config, dry_run, grace))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
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
