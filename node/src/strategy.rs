//! Strategies turn a build and its fetched inputs into a [`BuildPlan`]: a
//! context directory with a Dockerfile the engine builds. The Docker
//! strategy edits the user's Dockerfile; the Source strategy
//! (`source_strategy.rs`) writes one that runs the builder image's
//! assemble script.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::build_inputs;
use super::dockerfile;
use super::inputs::Inputs;
use super::run::{build_env, pairs, BuildMeta, Outcome};
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
    let strategy = &meta.spec.strategy;
    let docker_strategy = strategy.docker_strategy.is_some();
    let source_strategy = strategy.source_strategy.is_some();
    match strategy.kind.as_str() {
        "Docker" => docker(meta, inputs, source).await,
        "" if docker_strategy => docker(meta, inputs, source).await,
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
/// postCommit hook last; the build-time Secrets and ConfigMaps in the
/// context at their `destinationDir`.
async fn docker(
    meta: &BuildMeta<'_>,
    inputs: &Inputs,
    c: &SourceContext<'_>,
) -> Result<BuildPlan, Outcome> {
    let spec = meta.spec;
    let ctx = source::context_path(&inputs.src, spec.context_dir())
        .map_err(|e| Outcome::Failed("InvalidContextDirectory", e.to_string()))?;
    let strategy = spec.strategy.docker_strategy.clone().unwrap_or_default();
    let inline = spec.inline_dockerfile();
    let path = match (
        inline,
        strategy.dockerfile_path.as_deref().unwrap_or_default(),
    ) {
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
    let from = strategy
        .from
        .as_ref()
        .filter(|f| f.kind == "DockerImage" && !f.name.is_empty())
        .map(|f| f.name.as_str());
    let mut text = dockerfile::rewrite(
        &text,
        from,
        &pairs(strategy.env.as_deref().unwrap_or_default()),
        &build_env(meta, inputs),
    )
    .map_err(|e| Outcome::Failed("DockerBuildFailed", e.to_string()))?;
    let hook = match spec.post_commit.as_ref().map(dockerfile::post_commit) {
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
    build_inputs::write_into_context(&ctx, c.grant, c.log).await?;
    Ok(BuildPlan {
        context: ctx,
        dockerfile: path,
        build_args: pairs(strategy.build_args.as_deref().unwrap_or_default())
            .into_iter()
            .collect(),
        no_cache: strategy.no_cache == Some(true),
        force_pull: strategy.force_pull == Some(true)
            || strategy.pull_policy.as_deref() == Some("Always"),
        steps: hook
            .map(|(_, named)| (named, "PostCommitHookFailed"))
            .into_iter()
            .collect(),
        failure: "DockerBuildFailed",
        s2i: false,
    })
}
