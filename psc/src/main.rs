//! `psc`: the PodSpace CLI.

mod client;
mod cmd;
mod config;
mod manifest;
mod output;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "psc", version, about = "The PodSpace Pipeline command line")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
pub struct Global {
    /// Project to act in (instead of the current one)
    #[arg(short = 'n', long = "namespace", global = true, value_name = "PROJECT")]
    pub namespace: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Log in to a server (prompts for missing credentials)
    Login(cmd::auth::LoginArgs),
    /// End the current session: the token is revoked on the server
    Logout,
    /// Show the current user
    Whoami {
        /// Print the session token instead
        #[arg(short = 't', long = "show-token")]
        token: bool,
        /// Print the server URL instead
        #[arg(long = "show-server")]
        server: bool,
    },
    /// Create a project and switch to it
    NewProject(cmd::projects::NewProjectArgs),
    /// List the projects you can see
    Projects,
    /// Show the current project, or switch to another
    Project { name: Option<String> },
    /// Show objects: psc get KIND [NAME...]
    Get(cmd::objects::GetArgs),
    /// Show the details of an object: psc describe KIND NAME | KIND/NAME
    Describe {
        kind: String,
        name: Option<String>,
        /// Show webhook URLs with their secrets (read from the config and
        /// its Secrets, as far as you may read them)
        #[arg(long)]
        show_secrets: bool,
    },
    /// Create objects from a file (YAML or JSON), or a user or token
    Create(cmd::objects::CreateArgs),
    /// Create or update objects from a file
    Apply(cmd::objects::FileArgs),
    /// Delete objects: psc delete KIND NAME... | -f FILE
    Delete(cmd::objects::DeleteArgs),
    /// Point image stream tags at images: psc tag SOURCE DEST... | -d DEST...
    Tag(cmd::tag::TagArgs),
    /// Import an image from another registry into an image stream tag
    ImportImage(cmd::import::ImportArgs),
    /// Create a build config (and its output image stream) from a Git repository
    NewBuild(cmd::newbuild::NewBuildArgs),
    /// Make an application from a template: process it and create its objects
    NewApp(cmd::template::NewAppArgs),
    /// Process a template (a file or a stored one) into a List of objects
    Process(cmd::template::ProcessArgs),
    /// Start a build of a build config, or run a build again
    StartBuild(cmd::startbuild::StartBuildArgs),
    /// Cancel new, pending or running builds
    CancelBuild(cmd::builds::CancelArgs),
    /// Print the log of a build: psc logs [-f] build/NAME | bc/NAME
    Logs(cmd::builds::LogsArgs),
    /// Deployments of a DeploymentConfig: latest, history, undo
    Rollout {
        #[command(subcommand)]
        command: cmd::rollout::RolloutCommand,
    },
    /// Change a part of an object: psc set triggers bc/NAME --from-github
    Set {
        #[command(subcommand)]
        command: cmd::set::SetCommand,
    },
    /// Manage who may do what in a project
    Policy {
        #[command(subcommand)]
        command: cmd::policy::PolicyCommand,
    },
    /// Cluster administration: psc adm prune images
    Adm {
        #[command(subcommand)]
        command: cmd::adm::AdmCommand,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(cli));
    if let Err(e) = result {
        if e.downcast_ref::<client::ServerError>().is_some()
            || e.downcast_ref::<cmd::Reported>().is_some()
        {
            if e.downcast_ref::<cmd::Reported>().is_none() {
                eprintln!("{e}");
            }
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Login(args) => cmd::auth::login(args).await,
        Command::Logout => cmd::auth::logout().await,
        Command::Whoami { token, server } => cmd::auth::whoami(token, server).await,
        Command::NewProject(args) => cmd::projects::new_project(args).await,
        Command::Projects => cmd::projects::list().await,
        Command::Project { name } => cmd::projects::switch(name).await,
        Command::Get(args) => cmd::objects::get(&g, args).await,
        Command::Describe {
            kind,
            name,
            show_secrets,
        } => {
            let name = name.as_deref().unwrap_or_default();
            cmd::objects::describe(&g, &kind, name, show_secrets).await
        }
        Command::Create(args) => cmd::objects::create(&g, args).await,
        Command::Apply(args) => cmd::objects::apply(&g, args).await,
        Command::Delete(args) => cmd::objects::delete(&g, args).await,
        Command::Policy { command } => cmd::policy::run(&g, command).await,
        Command::Adm { command } => cmd::adm::run(&g, command).await,
        Command::Set { command } => cmd::set::run(&g, command).await,
        Command::Tag(args) => cmd::tag::run(&g, args).await,
        Command::Rollout { command } => cmd::rollout::run(&g, command).await,
        Command::ImportImage(args) => cmd::import::run(&g, args).await,
        Command::NewBuild(args) => cmd::newbuild::run(&g, args).await,
        Command::NewApp(args) => cmd::template::run_new_app(&g, args).await,
        Command::Process(args) => cmd::template::run_process(&g, args).await,
        Command::StartBuild(args) => cmd::startbuild::run(&g, args).await,
        Command::CancelBuild(args) => cmd::builds::cancel(&g, args).await,
        Command::Logs(args) => cmd::builds::logs(&g, args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks flag definitions (short-flag clashes, groups) only here.
    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
