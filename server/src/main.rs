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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => podspace_server::serve(*args),
        Command::Node(args) => node::run(args),
    }
}
