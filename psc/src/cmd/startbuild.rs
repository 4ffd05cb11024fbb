//! `psc start-build (BC | --from-build=BUILD) [--from-dir|--from-file|
//! --from-archive|--from-repo] [--follow] [--wait]` (cli.md), and
//! `--as-dockerfile DIR` for Source builds (`asdockerfile.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{ArgGroup, Args};
use serde_json::{json, Value};

use super::builds::{
    build_request, builds_path, configs_path, name_values, parse_kv, phase_error, print_error,
    stream_log, wait_terminal,
};
use super::upload::{self, Input};
use super::{Reported, Session};
use crate::client::{error_code, Client};
use crate::output::s;
use crate::Global;

#[derive(Args)]
#[command(group(ArgGroup::new("binary").multiple(false)))]
pub struct StartBuildArgs {
    /// The build config to start (NAME or bc/NAME)
    #[arg(required_unless_present_any = ["from_build", "from_webhook"], conflicts_with = "from_build")]
    config: Option<String>,
    /// Run a build again with the same inputs
    #[arg(long, value_name = "BUILD", conflicts_with = "binary")]
    from_build: Option<String>,
    /// Binary input: the directory's contents as a tar.gz (.git left out)
    #[arg(long, value_name = "DIR", group = "binary")]
    from_dir: Option<PathBuf>,
    /// Binary input: one file, stored under its own name
    #[arg(long, value_name = "FILE", group = "binary")]
    from_file: Option<String>,
    /// Binary input: a tar, tar.gz or zip archive sent as is (- for stdin)
    #[arg(long, value_name = "ARCHIVE", group = "binary")]
    from_archive: Option<String>,
    /// Binary input: a commit of a local Git repository
    #[arg(long, value_name = "DIR", group = "binary")]
    from_repo: Option<PathBuf>,
    /// The commit to build (or to archive with --from-repo)
    #[arg(long, value_name = "REF")]
    commit: Option<String>,
    /// Environment for the build (replaces strategy env of the same name)
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// Docker build arguments
    #[arg(long = "build-arg", value_name = "K=V", value_parser = parse_kv)]
    build_args: Vec<(String, String)>,
    /// Sets BUILD_LOGLEVEL for the build
    #[arg(long, value_name = "N")]
    build_loglevel: Option<u32>,
    /// Override the config's incremental setting (Source builds)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    incremental: Option<bool>,
    /// Override the config's noCache setting (Docker builds)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    no_cache: Option<bool>,
    /// Stream the build's log until it ends
    #[arg(short = 'F', long)]
    follow: bool,
    /// Wait for the build to end; fail unless it completes
    #[arg(short = 'w', long)]
    wait: bool,
    /// `name` prints only build.build.openshift.io/NAME
    #[arg(short = 'o', long = "output", value_parser = ["name"])]
    output: Option<String>,
    /// Source builds: write the Dockerfile and context that reproduce the
    /// build into DIR instead of starting it (the source from --from-dir, else
    /// a clone of the config's repository at --commit or its ref)
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["from_build", "from_file", "from_archive", "from_repo"]
    )]
    as_dockerfile: Option<PathBuf>,
    /// Post a Generic webhook delivery to URL instead (no login needed)
    #[arg(long, value_name = "URL", conflicts_with_all = ["from_build", "from_dir", "from_file", "from_archive", "from_repo", "as_dockerfile"])]
    from_webhook: Option<String>,
    /// With --from-webhook: a post-receive hook's input (`old new ref` lines; - for stdin)
    #[arg(long, value_name = "FILE", requires = "from_webhook")]
    git_post_receive: Option<PathBuf>,
    /// With --git-post-receive: the repository whose commits are described [default: .]
    #[arg(long, value_name = "DIR", requires = "git_post_receive")]
    git_repository: Option<PathBuf>,
}

impl StartBuildArgs {
    fn input(&self) -> Option<Input> {
        if let Some(d) = &self.from_dir {
            return Some(Input::Dir(d.clone()));
        }
        if let Some(f) = &self.from_file {
            return Some(Input::File(f.clone()));
        }
        if let Some(a) = &self.from_archive {
            return Some(Input::Archive(a.clone()));
        }
        self.from_repo.clone().map(Input::Repo)
    }

    /// A BuildRequest for `name` carrying the overrides given.
    fn request(&self, name: &str) -> Value {
        let mut req = build_request(name);
        let mut env = self.env.clone();
        if let Some(level) = self.build_loglevel {
            env.push(("BUILD_LOGLEVEL".into(), level.to_string()));
        }
        if !env.is_empty() {
            req["env"] = name_values(&env);
        }
        if !self.build_args.is_empty() {
            req["dockerStrategyOptions"]["buildArgs"] = name_values(&self.build_args);
        }
        if let Some(no_cache) = self.no_cache {
            req["dockerStrategyOptions"]["noCache"] = json!(no_cache);
        }
        if let Some(incremental) = self.incremental {
            req["sourceStrategyOptions"]["incremental"] = json!(incremental);
        }
        if let Some(commit) = &self.commit {
            req["revision"] = json!({"type": "Git", "git": {"commit": commit}});
        }
        req
    }
}

fn config_name(arg: &str) -> &str {
    ["bc/", "buildconfig/", "buildconfigs/"]
        .iter()
        .find_map(|p| arg.strip_prefix(p))
        .unwrap_or(arg)
}

pub async fn run(g: &Global, args: StartBuildArgs) -> Result<()> {
    if let Some(url) = &args.from_webhook {
        return super::webhookpost::post(
            url,
            args.git_post_receive.as_ref(),
            args.git_repository.as_ref(),
            &args.env,
        )
        .await;
    }
    let session = Session::load(g)?;
    let ns = session.namespace()?;
    let client = &session.client;
    let config = args.config.as_deref().map(config_name);
    if let (Some(out), Some(bc)) = (&args.as_dockerfile, config) {
        let req = super::asdockerfile::Request {
            config: bc,
            from_dir: args.from_dir.as_deref(),
            commit: args.commit.as_deref(),
            incremental: args.incremental,
            env: &args.env,
            out,
        };
        return super::asdockerfile::write(client, ns, &req).await;
    }
    let created = match (&args.from_build, args.input()) {
        (Some(build), _) => {
            let path = format!("{}/{build}/clone", builds_path(ns));
            client.post(&path, &args.request(build)).await
        }
        (None, Some(input)) => {
            let bc = config.unwrap_or_default();
            upload_binary(client, ns, bc, &args, &input).await
        }
        (None, None) => {
            let bc = config.unwrap_or_default();
            let path = format!("{}/{bc}/instantiate", configs_path(ns));
            client.post(&path, &args.request(bc)).await
        }
    };
    let build = match created {
        Ok(b) => b,
        // The config's counter points at a build that exists already.
        Err(e) if error_code(&e) == Some(409) && config.is_some() => {
            eprintln!("{e}");
            eprintln!(
                "error: the build number of build config {ns}/{} (status.lastVersion) is behind an existing build of that name: delete the old build or raise lastVersion, then start the build again",
                config.unwrap_or_default()
            );
            return Err(Reported.into());
        }
        Err(e) => return Err(e),
    };
    let name = s(&build, "/metadata/name").to_string();
    if args.output.is_some() {
        println!("build.build.openshift.io/{name}");
    } else {
        println!("build.build.openshift.io/{name} started");
    }
    if args.follow {
        let query = [("follow", "true".to_string())];
        if let Err(e) = stream_log(client, ns, &name, &query).await {
            print_error(&e);
            eprintln!("Use 'psc logs build/{name}' to see the build's log.");
            return Err(Reported.into());
        }
        // The log can end a moment before the build's phase is written.
        let deadline = Instant::now() + Duration::from_secs(60);
        let every = Duration::from_millis(100);
        match wait_terminal(client, ns, &name, every, Some(deadline)).await? {
            Some(done) => return finished(ns, &done),
            None => {
                eprintln!(
                    "error: the log of build {ns}/{name} ended but the build is still running"
                );
                return Err(Reported.into());
            }
        }
    }
    if args.wait {
        let every = Duration::from_millis(200);
        if let Some(done) = wait_terminal(client, ns, &name, every, None).await? {
            return finished(ns, &done);
        }
    }
    Ok(())
}

fn finished(ns: &str, build: &Value) -> Result<()> {
    match phase_error(ns, build) {
        None => Ok(()),
        Some(why) => {
            eprintln!("error: {why}");
            Err(Reported.into())
        }
    }
}

/// POST buildconfigs/{bc}/instantiatebinary with the input streamed.
async fn upload_binary(
    client: &Client,
    ns: &str,
    bc: &str,
    args: &StartBuildArgs,
    input: &Input,
) -> Result<Value> {
    // The binary endpoint takes no BuildRequest to carry these.
    if !args.env.is_empty() {
        eprintln!("WARNING: Specifying environment variables with binary builds is not supported.");
    }
    if !args.build_args.is_empty() {
        eprintln!("WARNING: Specifying build arguments with binary builds is not supported.");
    }
    if args.build_loglevel.is_some() {
        eprintln!("WARNING: Specifying --build-loglevel with binary builds is not supported.");
    }
    let upload::Upload {
        body,
        query,
        failure,
    } = upload::prepare(input, args.commit.as_deref()).await?;
    let path = format!("{}/{bc}/instantiatebinary", configs_path(ns));
    let result = client.post_stream(&path, &query, body).await;
    match result {
        Ok(build) => {
            eprintln!("Uploading finished");
            Ok(build)
        }
        // The body's own failure explains a broken-off request best.
        Err(e) => match failure.get() {
            Some(why) => Err(anyhow::anyhow!("cannot upload the binary input: {why}")),
            None => Err(e),
        },
    }
}
