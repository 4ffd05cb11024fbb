//! The `podspace` service as a library: configuration, wiring, the HTTP
//! API's routes and the build node's command. `main.rs` only parses the
//! command line; tests and benchmarks can start the same code.

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
