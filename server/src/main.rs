//! `podspace`: the PodSpace Pipeline service.

mod app;
mod bootstrap;
mod config;
mod http;
mod metrics;
mod rest;
mod tail;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "podspace",
    version,
    about = "PodSpace Pipeline: builds, images and deployments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the all-in-one service (API, registry, controllers) on the embedded default.
    Serve(config::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::Config::resolve(args)?;
            init_tracing(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(app::serve(config))
        }
    }
}

fn init_tracing(format: config::LogFormat) {
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
