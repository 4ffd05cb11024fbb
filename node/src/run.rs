//! One build on the node, start to report: fetch the inputs, prepare the
//! Dockerfile, build on the engine, push, and tell the API how it ended.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use podspace_api::model::build::SourceRevision;
use podspace_api::model::{self, Build, EnvVar};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::client::NodeClient;
use super::engine::{BuildSpec, ContainerEngine};
use super::inputs::{self, Inputs};
use super::log::BuildLog;
use super::pull;
use super::source;
use super::source_strategy;
use super::strategy;
use super::{NodeConfig, Running};
use podspace_api::model::build as phase;
use podspace_builder::protocol::{BuildReport, LeaseGrant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    /// The lease is gone (the API gave the build up): report nothing.
    Lost,
}

/// Stops a running build; the first reason wins.
#[derive(Clone)]
pub struct Stop(Arc<watch::Sender<Option<StopReason>>>);

impl Default for Stop {
    fn default() -> Self {
        Stop(Arc::new(watch::channel(None).0))
    }
}

impl Stop {
    pub fn signal(&self, why: StopReason) {
        self.0.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(why);
                true
            } else {
                false
            }
        });
    }

    async fn stopped(&self) -> StopReason {
        let mut rx = self.0.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                // Never dropped while the build runs; wait forever.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How a build ended on the node; the steps return it early on failure.
pub enum Outcome {
    Complete {
        reference: Option<String>,
        digest: Option<String>,
    },
    /// The build itself failed (phase Failed).
    Failed(&'static str, String),
    /// The system failed (phase Error).
    Error(&'static str, String),
    Stopped(StopReason),
}

/// What the build learns on the way, reported at the end.
#[derive(Default)]
struct Progress {
    revision: Option<SourceRevision>,
    stages: Vec<Value>,
}

impl Progress {
    fn stage(&mut self, name: &str, started: chrono::DateTime<chrono::Utc>, took: Duration) {
        self.stages.push(json!({
            "name": name,
            "startTime": started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "durationMilliseconds": took.as_millis() as u64,
        }));
    }
}

pub async fn build(
    grant: LeaseGrant,
    client: &NodeClient,
    engine: &dyn ContainerEngine,
    config: &NodeConfig,
    running: &Running,
    slot: usize,
) {
    let build: Build = match serde_json::from_value(grant.build.clone()) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "the API granted a build the node cannot read");
            return;
        }
    };
    let (ns, name, uid) = (
        build.metadata.namespace.clone(),
        build.metadata.name.clone(),
        build.metadata.uid.clone(),
    );
    tracing::info!(namespace = %ns, build = %name, slot, "build started");
    let stop = running.add(&uid);
    // Confirm the lease: only now is the build Running (and ours).
    let confirm = BuildReport {
        phase: phase::RUNNING.into(),
        ..Default::default()
    };
    if let Err(e) = client.report(&ns, &name, &confirm).await {
        tracing::info!(namespace = %ns, build = %name, error = %e, "the build cannot be started");
        running.remove(&uid);
        return;
    }
    let (log, shipper) = BuildLog::start(client.clone(), ns.clone(), name.clone());
    let deadline = build
        .spec
        .completion_deadline_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut progress = Progress::default();
    let work = tempfile::Builder::new()
        .prefix(&format!("{ns}-{name}-"))
        .tempdir_in(&config.work_dir);
    let started = Instant::now();
    let outcome = match &work {
        Err(e) => Outcome::Error(
            "CannotCreateBuildPod",
            format!("the node's work directory: {e}"),
        ),
        Ok(dir) => {
            tokio::select! {
                o = execute(&build, &grant, client, engine, config, &log, &mut progress, dir.path()) => o,
                why = stop.stopped() => Outcome::Stopped(why),
                _ = tokio::time::sleep(deadline) => Outcome::Failed(
                    "DeadlineExceeded",
                    format!("The build exceeded its completion deadline of {}s.", deadline.as_secs()),
                ),
            }
        }
    };
    let report = match outcome {
        Outcome::Complete { reference, digest } => {
            log.line(&format!(
                "Build complete in {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            BuildReport {
                phase: phase::COMPLETE.into(),
                output_docker_image_reference: reference,
                image_digest: digest,
                ..Default::default()
            }
        }
        Outcome::Failed(reason, message) => {
            log.line(&format!("error: build error: {message}"));
            BuildReport {
                phase: phase::FAILED.into(),
                reason: reason.into(),
                message,
                log_snippet: Some(log.snippet()),
                ..Default::default()
            }
        }
        Outcome::Error(reason, message) => {
            log.line(&format!("error: {message}"));
            BuildReport {
                phase: phase::ERROR.into(),
                reason: reason.into(),
                message,
                ..Default::default()
            }
        }
        Outcome::Stopped(StopReason::Cancelled) => {
            log.line("Build cancelled");
            BuildReport {
                phase: phase::CANCELLED.into(),
                reason: "CancelledBuild".into(),
                message: "The build was cancelled by the user.".into(),
                ..Default::default()
            }
        }
        Outcome::Stopped(StopReason::Lost) => BuildReport::default(),
    };
    let mut report = report;
    report.revision = progress.revision.take();
    report.stages = (!progress.stages.is_empty()).then_some(Value::Array(progress.stages));
    shipper.finish(log).await;
    if !report.phase.is_empty() {
        for attempt in 0..5u32 {
            match client.report(&ns, &name, &report).await {
                Ok(()) => break,
                Err(e) if e.is_final() => {
                    tracing::info!(build = %name, error = %e, "the build result was not taken");
                    break;
                }
                Err(e) => {
                    tracing::warn!(build = %name, error = %e, attempt, "reporting the build result");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
    }
    running.remove(&uid);
    tracing::info!(namespace = %ns, build = %name, phase = %report.phase, secs = started.elapsed().as_secs_f64(), "build ended");
    if let Ok(dir) = work {
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
    }
}

/// Env lists (env, build args) as pairs; a variable taken from a Secret
/// or field (`valueFrom`) has no value the node could know: empty.
pub fn pairs(v: &[EnvVar]) -> Vec<(String, String)> {
    v.iter()
        .filter(|e| !e.name.is_empty())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// `<registry>/<ns>/<stream>:<tag>` for an ImageStreamTag output, the name
/// for a DockerImage output.
fn output_reference(spec: &model::BuildSpec, ns: &str, registry: &str) -> Option<String> {
    let to = spec.output_to().filter(|t| !t.name.is_empty())?;
    let name = to.name.as_str();
    match to.kind.as_str() {
        "DockerImage" => Some(name.to_string()),
        "ImageStreamTag" | "" => {
            let target_ns = to
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(ns);
            let (is, tag) = name.split_once(':').unwrap_or((name, "latest"));
            Some(format!("{registry}/{target_ns}/{is}:{tag}"))
        }
        _ => None,
    }
}

/// Splits `host/repo:tag` into (`host/repo`, `tag`).
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

/// What the build is about, for the strategies: where it runs, what it
/// fetched.
pub struct BuildMeta<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a model::BuildSpec,
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    build: &Build,
    grant: &LeaseGrant,
    client: &NodeClient,
    engine: &dyn ContainerEngine,
    config: &NodeConfig,
    log: &BuildLog,
    progress: &mut Progress,
    work: &Path,
) -> Outcome {
    let ns = build.metadata.namespace.as_str();
    let name = build.metadata.name.as_str();
    let spec = &build.spec;
    let meta = BuildMeta {
        namespace: ns,
        name,
        spec,
    };
    log.line(&format!(
        "Build {ns}/{name} on node {} ({})",
        client.node(),
        if engine.buildkit() {
            "BuildKit"
        } else {
            "classic builder"
        }
    ));

    let fetch_start = (chrono::Utc::now(), Instant::now());
    let inputs = match inputs::fetch(&meta, grant, client, work, log).await {
        Ok(i) => i,
        Err(o) => return o,
    };
    progress.revision = inputs.revision.clone();
    progress.stage("FetchInputs", fetch_start.0, fetch_start.1.elapsed());

    // The strategy turns the build and its inputs into a plan for the engine.
    let reference = output_reference(spec, ns, &grant.registry);
    let source_context = strategy::SourceContext {
        grant,
        engine,
        log,
        work,
        output: reference.as_deref(),
    };
    let plan = match strategy::plan(&meta, &inputs, &source_context).await {
        Ok(p) => p,
        Err(o) => return o,
    };
    // Every image the build reads, checked with its own credentials and
    // pinned to a digest before the engine sees the Dockerfile.
    let pull_start = (chrono::Utc::now(), Instant::now());
    let dockerfile_path = plan.context.join(&plan.dockerfile);
    if let Err(o) =
        pull::pin_base_images(&dockerfile_path, &plan.build_args, engine, grant, log).await
    {
        return o;
    }
    progress.stage("PullImages", pull_start.0, pull_start.1.elapsed());
    let context_tar = work.join("context.tar");
    let (c, t, d) = (
        plan.context.clone(),
        context_tar.clone(),
        plan.dockerfile.clone(),
    );
    let limits = source::ContextLimits::of(grant);
    match tokio::task::spawn_blocking(move || source::tar_context(&c, &t, &d, limits)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Outcome::Failed("FetchSourceFailed", e.to_string()),
        Err(e) => return Outcome::Error("FetchSourceFailed", e.to_string()),
    }

    // Build.
    let tag = reference
        .clone()
        .unwrap_or_else(|| format!("podspace-build/{ns}-{name}:latest"));
    let credentials = DockerCredentials {
        username: Some("builder".into()),
        password: Some(grant.registry_token.clone()),
        serveraddress: Some(grant.registry.clone()),
        ..Default::default()
    };
    let build_start = (chrono::Utc::now(), Instant::now());
    let built = engine
        .build(
            BuildSpec {
                context: &context_tar,
                dockerfile: plan.dockerfile.clone(),
                tag: tag.clone(),
                build_args: plan.build_args.clone(),
                labels: image_labels(&meta, &inputs),
                no_cache: plan.no_cache,
                force_pull: plan.force_pull,
                network: config.network.clone(),
                credentials: grant
                    .pull_auths
                    .iter()
                    .map(|(host, a)| (host.clone(), docker_credentials(host, a)))
                    .chain([(grant.registry.clone(), credentials.clone())])
                    .collect(),
            },
            log,
        )
        .await;
    progress.stage("Build", build_start.0, build_start.1.elapsed());
    if let Err(e) = built {
        let message = e.to_string();
        let reason = plan
            .steps
            .iter()
            .find(|(named, _)| message.contains(named.as_str()))
            .map_or(plan.failure, |(_, reason)| *reason);
        return Outcome::Failed(reason, message);
    }
    if plan.s2i {
        if let Err(o) = source_strategy::finish(engine, &tag, log).await {
            engine.remove_image(&tag).await;
            return o;
        }
    }

    // Push.
    let Some(reference) = reference else {
        engine.remove_image(&tag).await;
        return Outcome::Complete {
            reference: None,
            digest: None,
        };
    };
    let push_start = (chrono::Utc::now(), Instant::now());
    log.line(&format!("Pushing image {reference} ..."));
    let (repo, tag) = split_tag(&reference);
    let host = repo.split('/').next().unwrap_or_default();
    let push_credentials = if host == grant.registry {
        Some(credentials)
    } else {
        grant
            .push_auths
            .get(host)
            .map(|a| docker_credentials(host, a))
    };
    let pushed = engine.push(repo, tag, push_credentials, log).await;
    progress.stage("PushImage", push_start.0, push_start.1.elapsed());
    match pushed {
        Ok(digest) => {
            log.line(&format!("Successfully pushed {repo}@{digest}"));
            log.line("Push successful");
            Outcome::Complete {
                reference: Some(reference),
                digest: Some(digest),
            }
        }
        Err(e) => Outcome::Failed("PushImageToRegistryFailed", e.to_string()),
    }
}

fn docker_credentials(
    host: &str,
    auth: &podspace_builder::protocol::RegistryAuth,
) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.clone()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    }
}

/// The `OPENSHIFT_BUILD_*` variables baked into the image (builds.md §11).
pub fn build_env(meta: &BuildMeta<'_>, inputs: &Inputs) -> Vec<(String, String)> {
    let commit = inputs
        .revision
        .as_ref()
        .map(|r| r.commit().to_string())
        .unwrap_or_default();
    let mut env = vec![
        ("OPENSHIFT_BUILD_NAME".to_string(), meta.name.to_string()),
        (
            "OPENSHIFT_BUILD_NAMESPACE".to_string(),
            meta.namespace.to_string(),
        ),
    ];
    for (k, v) in [
        ("OPENSHIFT_BUILD_SOURCE", inputs.source_location.as_str()),
        ("OPENSHIFT_BUILD_REFERENCE", inputs.git_ref.as_str()),
        ("OPENSHIFT_BUILD_COMMIT", commit.as_str()),
    ] {
        if !v.is_empty() {
            env.push((k.to_string(), v.to_string()));
        }
    }
    env
}

/// The output image's labels (builds.md §11), `output.imageLabels` last.
fn image_labels(meta: &BuildMeta<'_>, inputs: &Inputs) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = HashMap::new();
    if let Some(git) = inputs.revision.as_ref().and_then(|r| r.git.as_ref()) {
        let author = git.author.clone().unwrap_or_default();
        let author = format!("{} <{}>", author.name, author.email);
        for (k, v) in [
            ("io.openshift.build.commit.id", git.commit.as_str()),
            ("io.openshift.build.commit.message", git.message.as_str()),
            ("io.openshift.build.commit.date", git.date.as_str()),
            ("io.openshift.build.commit.author", author.as_str()),
        ] {
            if !v.is_empty() && v != " <>" {
                labels.insert(k.into(), v.into());
            }
        }
    }
    let context_dir = meta.spec.context_dir();
    for (k, v) in [
        ("io.openshift.build.commit.ref", inputs.git_ref.as_str()),
        (
            "io.openshift.build.source-location",
            inputs.source_location.as_str(),
        ),
        ("io.openshift.build.source-context-dir", context_dir),
        ("io.openshift.build.name", meta.name),
        ("io.openshift.build.namespace", meta.namespace),
    ] {
        if !v.is_empty() {
            labels.insert(k.into(), v.into());
        }
    }
    let output_labels = meta
        .spec
        .output
        .as_ref()
        .and_then(|o| o.image_labels.as_ref());
    for l in output_labels.into_iter().flatten() {
        labels.insert(l.name.clone(), l.value.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_references() {
        let spec = |v: Value| -> model::BuildSpec { serde_json::from_value(v).unwrap() };
        let one = spec(json!({"output": {"to": {"kind": "ImageStreamTag", "name": "shop:v1"}}}));
        assert_eq!(
            output_reference(&one, "p", "127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000/p/shop:v1")
        );
        let other = spec(
            json!({"output": {"to": {"kind": "ImageStreamTag", "name": "shop", "namespace": "q"}}}),
        );
        assert_eq!(
            output_reference(&other, "p", "r:1").as_deref(),
            Some("r:1/q/shop:latest")
        );
        assert_eq!(output_reference(&spec(json!({})), "p", "r"), None);
        assert_eq!(split_tag("r:5000/p/s:v1"), ("r:5000/p/s", "v1"));
        assert_eq!(split_tag("r:5000/p/s"), ("r:5000/p/s", "latest"));
    }
}
