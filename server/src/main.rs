//! `podspace`: the PodSpace Pipeline service.

mod app;
mod bootstrap;
mod config;
mod datadir;
mod http;
mod listener;
mod metrics;
mod nodes;
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
    Serve(Box<config::ServeArgs>),
    /// Run a build node for a PodSpace API on another machine.
    Node(NodeArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// URL of the PodSpace API
    #[arg(long, env = "PODSPACE_API", value_name = "URL")]
    api: String,
    /// Token of a user bound to the system:build-node cluster role (or a cluster-admin)
    #[arg(
        long,
        env = "PODSPACE_NODE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// Name of this node [default: the host name]
    #[arg(long, env = "PODSPACE_NODE_NAME")]
    name: Option<String>,
    /// Builds run at once
    #[arg(long, env = "PODSPACE_NODE_SLOTS", default_value_t = 2)]
    slots: usize,
    /// Network of build containers: host or none
    #[arg(long, env = "PODSPACE_BUILD_NETWORK", default_value = "host", value_parser = ["host", "none"])]
    build_network: String,
    /// Where sources are checked out
    #[arg(long, env = "PODSPACE_NODE_WORK_DIR", default_value = ".podspace-node")]
    work_dir: std::path::PathBuf,
    /// Use the classic builder even when the engine has BuildKit
    #[arg(long)]
    classic_builder: bool,
    /// Log format: text or json
    #[arg(long, env = "PODSPACE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::Config::resolve(*args)?;
            init_tracing(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(app::serve(config))
        }
        Command::Node(args) => {
            init_tracing(if args.log_format == "json" {
                config::LogFormat::Json
            } else {
                config::LogFormat::Text
            });
            let name = args.name.clone().unwrap_or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "node".into())
            });
            let node = podspace_builder::node::NodeConfig {
                api: args.api,
                token: args.token,
                name,
                slots: args.slots,
                network: args.build_network,
                classic_builder: args.classic_builder,
                work_dir: args.work_dir,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async move {
                // SIGINT or SIGTERM: take no new builds, finish the running
                // ones (a second signal stops at once).
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    app::shutdown_signal().await;
                    tracing::info!(
                        "build node draining: no new builds, finishing the running ones"
                    );
                    let _ = tx.send(true);
                    app::shutdown_signal().await;
                    std::process::exit(130);
                });
                podspace_builder::node::run(node, rx)
                    .await
                    .context("build node")
            })
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
