//! Strategies turn a build and its fetched inputs into a [`BuildPlan`]: a
//! context directory with a Dockerfile the engine builds. The Docker
//! strategy edits the user's Dockerfile; the Source strategy
//! (`source_strategy.rs`) writes one that runs the builder image's
//! assemble script.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::dockerfile;
use super::inputs::Inputs;
use super::run::{build_env, pairs, str_at, BuildMeta, Outcome};
use super::source;
use super::source_strategy;
pub use super::source_strategy::SourceContext;

pub struct BuildPlan {
    /// The directory sent to the engine as the build context.
    pub context: PathBuf,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub no_cache: bool,
    pub force_pull: bool,
    /// How an engine error names a step, and the failure reason when that
    /// step failed (the postCommit hook, S2I's assemble).
    pub steps: Vec<(String, &'static str)>,
    /// The reason of any other engine failure.
    pub failure: &'static str,
    /// A Source build: assemble's `image_metadata.json` labels are applied
    /// to the built image and the label bound checked (`source_strategy::finish`).
    pub s2i: bool,
}

pub async fn plan(
    meta: &BuildMeta<'_>,
    inputs: &Inputs,
    source: &SourceContext<'_>,
) -> Result<BuildPlan, Outcome> {
    let docker_strategy = meta.spec.pointer("/strategy/dockerStrategy").is_some();
    let source_strategy = meta.spec.pointer("/strategy/sourceStrategy").is_some();
    match str_at(meta.spec, "/strategy/type") {
        "Docker" => docker(meta, inputs).await,
        "" if docker_strategy => docker(meta, inputs).await,
        "Source" => source_strategy::plan(meta, inputs, source).await,
        "" if source_strategy => source_strategy::plan(meta, inputs, source).await,
        other => Err(Outcome::Failed(
            "GenericBuildFailed",
            format!("the {other:?} build strategy is not supported by this build node"),
        )),
    }
}

/// The Docker strategy (builds.md §11): the context directory, the
/// Dockerfile (inline or at `dockerfilePath`) with its last `FROM`
/// replaced, the strategy env after it, the build env appended and the
/// postCommit hook last.
async fn docker(meta: &BuildMeta<'_>, inputs: &Inputs) -> Result<BuildPlan, Outcome> {
    let spec = meta.spec;
    let context_dir = str_at(spec, "/source/contextDir");
    let ctx = source::context_path(&inputs.src, context_dir)
        .map_err(|e| Outcome::Failed("InvalidContextDirectory", e.to_string()))?;
    let strategy = spec
        .pointer("/strategy/dockerStrategy")
        .cloned()
        .unwrap_or(Value::Null);
    let inline = spec.pointer("/source/dockerfile").and_then(Value::as_str);
    let path = match (inline, str_at(&strategy, "/dockerfilePath")) {
        (Some(_), _) | (None, "") => "Dockerfile".to_string(),
        (None, p) => p.trim_start_matches('/').to_string(),
    };
    if Path::new(&path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(Outcome::Failed(
            "InvalidContextDirectory",
            format!("invalid dockerfilePath {path:?}"),
        ));
    }
    let text = match inline {
        Some(t) => t.to_string(),
        None => tokio::fs::read_to_string(ctx.join(&path))
            .await
            .map_err(|_| {
                Outcome::Failed(
                    "DockerBuildFailed",
                    format!("no Dockerfile at {path:?} in the build context"),
                )
            })?,
    };
    let from = (str_at(&strategy, "/from/kind") == "DockerImage")
        .then(|| str_at(&strategy, "/from/name"))
        .filter(|n| !n.is_empty());
    let mut text = dockerfile::rewrite(
        &text,
        from,
        &pairs(strategy.get("env")),
        &build_env(meta, inputs),
    )
    .map_err(|e| Outcome::Failed("DockerBuildFailed", e.to_string()))?;
    let hook = match spec.get("postCommit").map(dockerfile::post_commit) {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(Outcome::Failed("PostCommitHookFailed", e)),
        None => None,
    };
    if let Some((line, _)) = &hook {
        text.push_str(line);
        text.push('\n');
    }
    let file = ctx.join(&path);
    if let Some(parent) = file.parent() {
        let _ = tokio::fs::create_dir_all(parent).await;
    }
    tokio::fs::write(&file, text)
        .await
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    Ok(BuildPlan {
        context: ctx,
        dockerfile: path,
        build_args: pairs(strategy.get("buildArgs")).into_iter().collect(),
        no_cache: strategy.get("noCache") == Some(&json!(true)),
        force_pull: strategy.get("forcePull") == Some(&json!(true))
            || str_at(&strategy, "/pullPolicy") == "Always",
        steps: hook
            .map(|(_, named)| (named, "PostCommitHookFailed"))
            .into_iter()
            .collect(),
        failure: "DockerBuildFailed",
        s2i: false,
    })
}
