//! What the build commands share (paths, BuildRequests, picking builds,
//! following logs and phases), and `psc logs` / `psc cancel-build`.

use std::cmp::Reverse;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::objects::urlencode;
use super::{Reported, Session};
use crate::client::{error_code, Client, ServerError};
use crate::output::s;
use crate::Global;

/// The phases a build never leaves (builds.md §5).
pub const TERMINAL: [&str; 4] = ["Complete", "Failed", "Error", "Cancelled"];

/// Label and annotation naming a build's config (builds.md §3).
const CONFIG_LABEL: &str = "openshift.io/build-config.name";

pub fn builds_path(ns: &str) -> String {
    format!("/apis/build.openshift.io/v1/namespaces/{ns}/builds")
}

pub fn configs_path(ns: &str) -> String {
    format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs")
}

pub fn is_terminal(build: &Value) -> bool {
    TERMINAL.contains(&s(build, "/status/phase"))
}

/// A manual BuildRequest for `name` (a config to instantiate or a build to clone).
pub fn build_request(name: &str) -> Value {
    json!({
        "kind": "BuildRequest",
        "apiVersion": "build.openshift.io/v1",
        "metadata": {"name": name},
        "triggeredBy": [{"message": "Manually triggered"}],
    })
}

/// `K=V` from the command line, for `-e` and `--build-arg`.
pub fn parse_kv(arg: &str) -> Result<(String, String), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not of the form KEY=VALUE"))?;
    // Kubernetes' rule for environment variable names.
    let valid = k.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || "-._".contains(c) || (i > 0 && c.is_ascii_digit())
    });
    if k.is_empty() || !valid {
        return Err(format!(
            "{k:?} is not a valid variable name (letters, digits, '-', '.', '_', not starting with a digit)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `[{name, value}]`, the API's shape for env and build args.
pub fn name_values(pairs: &[(String, String)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

fn build_number(build: &Value) -> i64 {
    s(build, "/metadata/annotations/openshift.io~1build.number")
        .parse()
        .unwrap_or(0)
}

/// Newest first: by creation time, then by build number (two builds created
/// within the same second have equal timestamps).
pub fn sort_newest_first(builds: &mut [Value]) {
    builds.sort_by_key(|b| {
        let created =
            chrono::DateTime::parse_from_rfc3339(s(b, "/metadata/creationTimestamp")).ok();
        Reverse((created, build_number(b)))
    });
}

/// The builds of a config, newest first.
pub async fn of_config(client: &Client, ns: &str, config: &str) -> Result<Vec<Value>> {
    // The label holds at most 63 characters of the name; the annotation all of it.
    let label: String = config.chars().take(63).collect();
    let list = client
        .get(&format!(
            "{}?labelSelector={}",
            builds_path(ns),
            urlencode(&format!("{CONFIG_LABEL}={label}"))
        ))
        .await?;
    let mut builds: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| {
            let full = s(b, "/metadata/annotations/openshift.io~1build-config.name");
            full.is_empty() || full == config
        })
        .cloned()
        .collect();
    sort_newest_first(&mut builds);
    Ok(builds)
}

/// How oc prints a failure: server errors as they are, others as `error: …`.
pub fn print_error(e: &anyhow::Error) {
    if e.downcast_ref::<ServerError>().is_some() {
        eprintln!("{e}");
    } else {
        eprintln!("error: {e:#}");
    }
}

/// Why a finished build did not complete, for `error: …`.
pub fn phase_error(ns: &str, build: &Value) -> Option<String> {
    let phase = s(build, "/status/phase");
    if phase == "Complete" {
        return None;
    }
    let name = s(build, "/metadata/name");
    let why = match s(build, "/status/message") {
        "" => s(build, "/status/reason"),
        m => m,
    };
    Some(if why.is_empty() {
        format!("build {ns}/{name} ended with phase {phase}")
    } else {
        format!("build {ns}/{name} ended with phase {phase}: {why}")
    })
}

/// Polls a build until it is terminal; `None` when the deadline passes first.
pub async fn wait_terminal(
    client: &Client,
    ns: &str,
    name: &str,
    every: Duration,
    deadline: Option<Instant>,
) -> Result<Option<Value>> {
    let path = format!("{}/{name}", builds_path(ns));
    loop {
        let build = client.get(&path).await?;
        if is_terminal(&build) {
            return Ok(Some(build));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// Copies a build's log to stdout as it arrives.
pub async fn stream_log(
    client: &Client,
    ns: &str,
    name: &str,
    query: &[(&str, String)],
) -> Result<()> {
    let mut resp = client
        .get_stream(&format!("{}/{name}/log", builds_path(ns)), query)
        .await?;
    while let Some(chunk) = resp.chunk().await.context("the log stream broke off")? {
        let mut out = std::io::stdout().lock();
        match out.write_all(&chunk).and_then(|()| out.flush()) {
            // The reader went away (`psc logs … | head`): nothing left to do.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct LogsArgs {
    /// build/NAME, or bc/NAME for the newest build of a build config
    target: String,
    /// Keep streaming until the build ends
    #[arg(short = 'f', long)]
    follow: bool,
    /// The build with this number (bc/NAME-N)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    version: Option<u64>,
    /// The log of the build before
    #[arg(short = 'p', long)]
    previous: bool,
}

#[derive(Debug, PartialEq)]
enum LogTarget<'a> {
    Build(&'a str),
    Config(&'a str),
}

fn log_target(target: &str) -> Result<LogTarget<'_>> {
    let (kind, name) = target
        .split_once('/')
        .ok_or_else(|| anyhow!("logs are only available for builds and build configs: name one as build/NAME or bc/NAME"))?;
    if name.is_empty() {
        bail!("name a build as build/NAME or a build config as bc/NAME");
    }
    match kind {
        "build" | "builds" => Ok(LogTarget::Build(name)),
        "bc" | "buildconfig" | "buildconfigs" => Ok(LogTarget::Config(name)),
        _ => bail!("logs are only available for builds and build configs"),
    }
}

pub async fn logs(g: &Global, args: LogsArgs) -> Result<()> {
    if args.previous && args.version.is_some() {
        bail!("--previous and --version cannot be used together");
    }
    let session = Session::load(g)?;
    let ns = session.namespace()?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if args.follow {
        query.push(("follow", "true".into()));
    }
    if args.previous {
        query.push(("previous", "true".into()));
    }
    let build = match (log_target(&args.target)?, args.version) {
        (LogTarget::Build(name), version) => {
            if let Some(v) = version {
                query.push(("version", v.to_string()));
            }
            name.to_string()
        }
        // The build's name already says which version.
        (LogTarget::Config(bc), Some(v)) => format!("{bc}-{v}"),
        (LogTarget::Config(bc), None) => {
            let builds = of_config(&session.client, ns, bc).await?;
            let newest = builds
                .first()
                .ok_or_else(|| anyhow!("no builds found for {bc:?}"))?;
            s(newest, "/metadata/name").to_string()
        }
    };
    stream_log(&session.client, ns, &build, &query).await
}

#[derive(Args)]
pub struct CancelArgs {
    /// Builds, or bc/NAME for the builds of a build config
    #[arg(required = true, value_name = "BUILD")]
    targets: Vec<String>,
    /// Only cancel builds in these states: new, pending, running
    #[arg(long, value_delimiter = ',')]
    state: Vec<String>,
    /// Print each build's log before cancelling it
    #[arg(long)]
    dump_logs: bool,
    /// Start a copy of each cancelled build
    #[arg(long)]
    restart: bool,
}

/// `--state` values as phases; all non-terminal phases by default.
fn cancel_phases(states: &[String]) -> Result<Vec<&'static str>> {
    if states.is_empty() {
        return Ok(vec!["New", "Pending", "Running"]);
    }
    states
        .iter()
        .map(|st| match st.to_ascii_lowercase().as_str() {
            "new" => Ok("New"),
            "pending" => Ok("Pending"),
            "running" => Ok("Running"),
            _ => Err(anyhow!(
                "invalid --state {st:?}: use new, pending or running"
            )),
        })
        .collect()
}

pub async fn cancel(g: &Global, args: CancelArgs) -> Result<()> {
    let phases = cancel_phases(&args.state)?;
    let session = Session::load(g)?;
    let ns = session.namespace()?;
    let client = &session.client;
    let mut failed = false;
    let mut builds: Vec<Value> = Vec::new();
    for target in &args.targets {
        let config = ["bc/", "buildconfig/", "buildconfigs/"]
            .iter()
            .find_map(|p| target.strip_prefix(p));
        if let Some(bc) = config {
            builds.extend(of_config(client, ns, bc).await?);
            continue;
        }
        let name = ["build/", "builds/"]
            .iter()
            .find_map(|p| target.strip_prefix(p))
            .unwrap_or(target);
        match client.get(&format!("{}/{name}", builds_path(ns))).await {
            Ok(b) => builds.push(b),
            Err(e) if error_code(&e) == Some(404) => {
                eprintln!("error: build {ns}/{name} not found");
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    // Terminal builds (and those in states not asked for) are left alone.
    let mut names: Vec<String> = Vec::new();
    for b in &builds {
        let name = s(b, "/metadata/name").to_string();
        if phases.contains(&s(b, "/status/phase")) && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut requested = Vec::new();
    for name in &names {
        if args.dump_logs {
            println!("==== Build {ns}/{name} logs ====");
            let query = [("nowait", "true".to_string())];
            if let Err(e) = stream_log(client, ns, name, &query).await {
                print_error(&e);
            }
        }
        let patch = json!({"status": {"cancelled": true}});
        match client
            .merge_patch(&format!("{}/{name}/status", builds_path(ns)), &patch)
            .await
        {
            Ok(_) => requested.push(name),
            Err(e) => {
                print_error(&e);
                failed = true;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in &requested {
        let every = Duration::from_millis(250);
        match wait_terminal(client, ns, name, every, Some(deadline)).await {
            Ok(Some(b)) if s(&b, "/status/phase") == "Cancelled" => {
                println!("build.build.openshift.io/{name} cancelled");
            }
            // It finished on its own before the controller saw the request.
            Ok(Some(b)) => eprintln!(
                "warning: build {ns}/{name} ended with phase {} before it could be cancelled",
                s(&b, "/status/phase")
            ),
            Ok(None) => println!(
                "build.build.openshift.io/{name} marked for cancellation, waiting to be cancelled"
            ),
            Err(e) => {
                print_error(&e);
                failed = true;
            }
        }
    }
    if args.restart {
        for name in &requested {
            match client
                .post(
                    &format!("{}/{name}/clone", builds_path(ns)),
                    &build_request(name),
                )
                .await
            {
                Ok(b) => println!(
                    "build.build.openshift.io/{} restarted",
                    s(&b, "/metadata/name")
                ),
                Err(e) => {
                    print_error(&e);
                    failed = true;
                }
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(name: &str, created: &str, number: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created,
            "annotations": {"openshift.io/build.number": number}}})
    }

    #[test]
    fn newest_build_by_creation_then_number() {
        let mut builds = vec![
            build("web-2", "2024-01-01T10:00:00Z", "2"),
            build("web-10", "2024-01-01T10:00:00Z", "10"),
            build("web-9", "2024-01-01T10:00:00Z", "9"),
            build("web-1", "2024-01-01T09:00:00Z", "1"),
            build("web-3", "2024-01-01T11:00:00+02:00", "3"),
        ];
        sort_newest_first(&mut builds);
        let names: Vec<&str> = builds.iter().map(|b| s(b, "/metadata/name")).collect();
        assert_eq!(names, ["web-10", "web-9", "web-2", "web-3", "web-1"]);
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_kv("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_kv("A="), Ok(("A".into(), String::new())));
        assert!(parse_kv("A").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_kv("=x").is_err());
        assert!(parse_kv("1A=x").is_err());
        assert!(parse_kv("A B=x").is_err());
    }

    #[test]
    fn log_targets() {
        assert_eq!(
            log_target("build/web-1").unwrap(),
            LogTarget::Build("web-1")
        );
        assert_eq!(log_target("bc/web").unwrap(), LogTarget::Config("web"));
        assert!(log_target("dc/web").is_err());
        assert!(log_target("web").is_err());
        assert!(log_target("bc/").is_err());
    }

    #[test]
    fn cancel_states() {
        assert_eq!(
            cancel_phases(&["new".into(), "Running".into()]).unwrap(),
            ["New", "Running"]
        );
        assert!(cancel_phases(&["complete".into()]).is_err());
    }

    #[test]
    fn phase_errors() {
        let ok = json!({"metadata": {"name": "w-1"}, "status": {"phase": "Complete"}});
        assert_eq!(phase_error("p", &ok), None);
        let bad = json!({"metadata": {"name": "w-1"}, "status": {"phase": "Failed", "reason": "DockerBuildFailed"}});
        assert_eq!(
            phase_error("p", &bad).unwrap(),
            "build p/w-1 ended with phase Failed: DockerBuildFailed"
        );
    }
}
