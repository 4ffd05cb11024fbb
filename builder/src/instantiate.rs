//! The instantiate step shared by every way a build starts (builds.md §4):
//! number the build from the BuildConfig, copy its spec, label it, record
//! why it was triggered, and resolve image references to pull specs.

use podspace_api::model::build::{merge_env, BinaryBuildSource, BuildTriggerCause, SourceRevision};
use podspace_api::model::{Build, BuildConfig, BuildRequest, ObjectReference, Resource};
use podspace_api::{Reason, Status};
use serde_json::json;

pub const BUILD_NUMBER: &str = "openshift.io/build.number";
pub const BUILD_CONFIG: &str = "openshift.io/build-config.name";
pub const START_POLICY: &str = "openshift.io/build.start-policy";

pub fn last_version(bc: &BuildConfig) -> i64 {
    bc.status.last_version.unwrap_or(0)
}

/// A cause with only a message (`Manually triggered`).
pub fn cause(message: &str) -> BuildTriggerCause {
    BuildTriggerCause {
        message: message.into(),
        ..Default::default()
    }
}

/// Makes Build `<bc>-<n>` and bumps the config's `lastVersion`. `from_image`
/// is the pull spec the strategy's ImageStreamTag `from` resolved to. A
/// binary config cannot build without input: see [`new_binary_build`].
pub fn new_build(
    bc: &mut BuildConfig,
    causes: Vec<BuildTriggerCause>,
    from_image: Option<&str>,
) -> Result<Build, Status> {
    if bc.spec.is_binary() {
        return Err(Status::bad_request(format!(
            "build configuration {}/{} has no valid source inputs, if this is a binary build you must specify one of '--from-dir', '--from-repo', or '--from-file'",
            bc.metadata.namespace, bc.metadata.name
        )));
    }
    build_from(bc, causes, from_image)
}

/// A build whose source is uploaded binary input (builds.md §10): git is
/// dropped for this build, and an inline Dockerfile too when the input is
/// the Dockerfile itself.
pub fn new_binary_build(
    bc: &mut BuildConfig,
    causes: Vec<BuildTriggerCause>,
    from_image: Option<&str>,
    as_file: &str,
    revision: Option<SourceRevision>,
) -> Result<Build, Status> {
    check_as_file(as_file)?;
    let mut build = build_from(bc, causes, from_image)?;
    let source = build.spec.source.get_or_insert_with(Default::default);
    source.git = None;
    if as_file == "Dockerfile" {
        source.dockerfile = None;
    }
    source.kind = Some("Binary".into());
    source.binary = Some(BinaryBuildSource {
        as_file: (!as_file.is_empty()).then(|| as_file.to_string()),
        ..Default::default()
    });
    if let Some(r) = revision {
        build.spec.revision = Some(r);
    }
    Ok(build)
}

/// Applies a BuildRequest's options (builds.md §4 step 6): `env` replaces
/// same-name strategy variables, `dockerStrategyOptions` merges build
/// arguments by name and sets `noCache`, `sourceStrategyOptions` sets
/// `incremental`, `revision` pins the commit.
pub fn apply_request(build: &mut Build, request: &BuildRequest) -> Result<(), Status> {
    let strategy = &mut build.spec.strategy;
    if let Some(env) = &request.env {
        let Some(list) = strategy.env_mut() else {
            return Err(Status::bad_request(
                "the build has no strategy to set env on",
            ));
        };
        merge_env(list, env);
    }
    if let Some(opts) = &request.docker_strategy_options {
        let Some(docker) = strategy.docker_strategy.as_mut() else {
            return Err(Status::bad_request(
                "dockerStrategyOptions are only valid for a Docker strategy build",
            ));
        };
        if let Some(args) = &opts.build_args {
            merge_env(docker.build_args.get_or_insert_with(Vec::new), args);
        }
        if let Some(no_cache) = opts.no_cache {
            docker.no_cache = Some(no_cache);
        }
    }
    if let Some(opts) = &request.source_strategy_options {
        let Some(source) = strategy.source_strategy.as_mut() else {
            return Err(Status::bad_request(
                "sourceStrategyOptions are only valid for a Source strategy build",
            ));
        };
        if let Some(incremental) = opts.incremental {
            source.incremental = Some(incremental);
        }
    }
    if let Some(rev) = &request.revision {
        build.spec.revision = Some(rev.clone());
    }
    Ok(())
}

/// Re-runs `old` as the config's next build (`builds/NAME/clone`): the old
/// build's spec, a new number, a new cause.
pub fn clone_build(
    bc: &mut BuildConfig,
    old: &Build,
    causes: Vec<BuildTriggerCause>,
) -> Result<Build, Status> {
    if old.spec.is_binary() {
        return Err(Status::bad_request(format!(
            "cannot clone binary build {}: start a new one with its input",
            old.metadata.name
        )));
    }
    // The old build's spec, already resolved, replaces the config's: a
    // placeholder satisfies the config's own image resolution.
    let mut build = build_from(bc, causes.clone(), Some("-"))?;
    build.spec = old.spec.clone();
    build.spec.triggered_by = Some(causes);
    build.metadata.annotations.insert(
        "openshift.io/build.clone-of".into(),
        old.metadata.name.clone(),
    );
    Ok(build)
}

/// A paused config builds nothing (builds.md §3).
pub fn refuse_paused(bc: &BuildConfig) -> Result<(), Status> {
    let paused = bc
        .metadata
        .annotations
        .get("openshift.io/build-config.paused")
        .map(String::as_str)
        == Some("true");
    if paused {
        return Err(Status::bad_request(format!(
            "BuildConfig {:?} is paused",
            bc.metadata.name
        )));
    }
    Ok(())
}

/// `asFile` names one file: no `/`, `.` or `..`.
pub fn check_as_file(as_file: &str) -> Result<(), Status> {
    if as_file.contains('/') || as_file == "." || as_file == ".." {
        return Err(Status::bad_request(format!(
            "asFile {as_file:?} must be a file name without '/'"
        )));
    }
    Ok(())
}

fn build_from(
    bc: &mut BuildConfig,
    causes: Vec<BuildTriggerCause>,
    from_image: Option<&str>,
) -> Result<Build, Status> {
    refuse_paused(bc)?;
    let n = last_version(bc) + 1;
    bc.status.last_version = Some(n);
    let mut spec = bc.spec.build_spec().map_err(|e| {
        Status::internal(format!(
            "build configuration {}/{}: {e}",
            bc.metadata.namespace, bc.metadata.name
        ))
    })?;
    if let Some(from) = spec.strategy.from_mut() {
        if matches!(from.kind.as_str(), "ImageStreamTag" | "ImageStreamImage") {
            let image = from_image.ok_or_else(|| {
                let what = if from.kind == "ImageStreamTag" {
                    "unable to find latest tagged image"
                } else {
                    "no such image in the stream"
                };
                Status::new(
                    Reason::Invalid,
                    format!(
                        "Error resolving {} {} in namespace {}: {what}",
                        from.kind, from.name, bc.metadata.namespace
                    ),
                )
            })?;
            *from = ObjectReference {
                kind: "DockerImage".into(),
                name: image.into(),
                ..Default::default()
            };
        }
    }
    spec.triggered_by = Some(causes);
    let mut build = Build::named(&bc.metadata.namespace, &format!("{}-{n}", bc.metadata.name));
    build.spec = spec;
    build.status.phase = crate::phase::NEW.into();
    build.status.config = Some(ObjectReference {
        kind: "BuildConfig".into(),
        name: bc.metadata.name.clone(),
        namespace: Some(bc.metadata.namespace.clone()),
        ..Default::default()
    });
    build.metadata.labels = bc.metadata.labels.clone();
    let bc_label: String = bc.metadata.name.chars().take(63).collect();
    build
        .metadata
        .labels
        .insert(BUILD_CONFIG.into(), bc_label.clone());
    build.metadata.labels.insert("buildconfig".into(), bc_label);
    build
        .metadata
        .labels
        .insert(START_POLICY.into(), bc.spec.run_policy().into());
    build
        .metadata
        .annotations
        .insert(BUILD_NUMBER.into(), n.to_string());
    build
        .metadata
        .annotations
        .insert(BUILD_CONFIG.into(), bc.metadata.name.clone());
    build.metadata.extra.insert(
        "ownerReferences".into(),
        json!([{"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "name": bc.metadata.name, "uid": bc.metadata.uid, "controller": true}]),
    );
    Ok(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_labelled_and_resolved() {
        let mut bc: BuildConfig = serde_json::from_value(json!({
            "metadata": {"namespace": "p", "name": "shop"},
            "spec": {"runPolicy": "Parallel", "strategy": {"type": "Docker", "dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:1"}}}, "triggers": [{"type": "ConfigChange"}]}
        }))
        .unwrap();
        let b = new_build(
            &mut bc,
            vec![cause("Manually triggered")],
            Some("r/p/base@sha256:1"),
        )
        .unwrap();
        let body = serde_json::to_value(&b).unwrap();
        assert_eq!(b.metadata.name, "shop-1");
        assert_eq!(last_version(&bc), 1);
        assert_eq!(
            body["spec"]["strategy"]["dockerStrategy"]["from"],
            json!({"kind": "DockerImage", "name": "r/p/base@sha256:1"})
        );
        assert!(body["spec"].get("triggers").is_none());
        assert!(body["spec"].get("runPolicy").is_none());
        assert_eq!(b.metadata.labels[START_POLICY], "Parallel");
        assert_eq!(b.metadata.annotations[BUILD_NUMBER], "1");
        assert_eq!(body["status"]["phase"], "New");
        assert_eq!(body["kind"], "Build");
        assert!(
            new_build(&mut bc, vec![], None).is_err(),
            "an unresolved base image is refused"
        );
    }

    #[test]
    fn a_request_merges_env_and_build_args_by_name() {
        let mut b: Build = serde_json::from_value(json!({
            "spec": {"strategy": {"type": "Docker", "dockerStrategy": {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "buildArgs": [{"name": "X", "value": "1"}]}}}
        }))
        .unwrap();
        let request: BuildRequest = serde_json::from_value(json!({
            "env": [{"name": "B", "value": "3"}],
            "dockerStrategyOptions": {"buildArgs": [{"name": "X", "value": "2"}, {"name": "Y", "value": "1"}], "noCache": true}
        }))
        .unwrap();
        apply_request(&mut b, &request).unwrap();
        let body = serde_json::to_value(&b.spec.strategy).unwrap();
        assert_eq!(
            body["dockerStrategy"],
            json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}], "buildArgs": [{"name": "X", "value": "2"}, {"name": "Y", "value": "1"}], "noCache": true})
        );
        let source: BuildRequest =
            serde_json::from_value(json!({"sourceStrategyOptions": {"incremental": true}}))
                .unwrap();
        assert!(apply_request(&mut b, &source).is_err());
    }
}
