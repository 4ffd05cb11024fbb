//! `podspace`: the PodSpace Pipeline service. The command line only; the
//! service is the `podspace_server` library.

use clap::{Parser, Subcommand};
use podspace_server::{config, node};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Node(node::NodeArgs),
    /// Collect the registry's garbage once: unreferenced manifests and blobs
    /// older than the grace period (safe while the service runs).
    Gc(GcArgs),
}

#[derive(clap::Args)]
struct GcArgs {
    /// Print what would be freed; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Seconds since its last use before an unreferenced blob or manifest goes [default: the service's --gc-grace]
    #[arg(long, value_name = "SECONDS")]
    grace: Option<u64>,
    #[command(flatten)]
    serve: Box<config::ServeArgs>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => podspace_server::serve(*args),
        Command::Node(args) => node::run(args),
        Command::Gc(args) => podspace_server::gc(*args.serve, args.dry_run, args.grace),
    }
}
