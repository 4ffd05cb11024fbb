//! `podspace node`: a build node for a PodSpace API on another machine.

use anyhow::Context;

use crate::{app, config, init_tracing};

#[derive(clap::Args)]
pub struct NodeArgs {
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

/// Runs the node until SIGINT or SIGTERM (then it drains).
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
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
    let node = podspace_node::NodeConfig {
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
            tracing::info!("build node draining: no new builds, finishing the running ones");
            let _ = tx.send(true);
            app::shutdown_signal().await;
            std::process::exit(130);
        });
        podspace_node::run(node, rx).await.context("build node")
    })
}
