//! The instantiate step shared by every way a build starts (builds.md §4):
//! number the build from the BuildConfig, copy its spec, label it, record
//! why it was triggered, and resolve image references to pull specs.

use podspace_api::{Object, Reason, Status};
use serde_json::{json, Value};

pub const BUILD_NUMBER: &str = "openshift.io/build.number";
pub const BUILD_CONFIG: &str = "openshift.io/build-config.name";
pub const START_POLICY: &str = "openshift.io/build.start-policy";

pub fn last_version(bc: &Object) -> i64 {
    bc.body
        .get("status")
        .and_then(|s| s.get("lastVersion"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The strategy's `from`, whichever strategy it is.
pub fn strategy_from(spec: &Value) -> Option<&Value> {
    let strategy = spec.get("strategy")?;
    ["dockerStrategy", "sourceStrategy", "customStrategy"]
        .iter()
        .find_map(|k| strategy.get(*k).and_then(|s| s.get("from")))
}

fn strategy_from_mut(spec: &mut Value) -> Option<&mut Value> {
    let strategy = spec.get_mut("strategy")?;
    let key = ["dockerStrategy", "sourceStrategy", "customStrategy"]
        .into_iter()
        .find(|k| strategy.get(*k).and_then(|s| s.get("from")).is_some())?;
    strategy.get_mut(key)?.get_mut("from")
}

fn is_binary(spec: &Value) -> bool {
    spec.get("source")
        .and_then(|s| s.get("binary"))
        .is_some_and(|b| !b.is_null())
}

/// Makes Build `<bc>-<n>` and bumps the config's `lastVersion`. `from_image`
/// is the pull spec the strategy's ImageStreamTag `from` resolved to. A
/// binary config cannot build without input: see [`new_binary_build`].
pub fn new_build(
    bc: &mut Object,
    causes: Vec<Value>,
    from_image: Option<&str>,
) -> Result<Object, Status> {
    if bc.body.get("spec").is_some_and(is_binary) {
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
    bc: &mut Object,
    causes: Vec<Value>,
    from_image: Option<&str>,
    as_file: &str,
    revision: Option<Value>,
) -> Result<Object, Status> {
    check_as_file(as_file)?;
    let mut build = build_from(bc, causes, from_image)?;
    let spec = build.body.entry("spec").or_insert_with(|| json!({}));
    let source = spec
        .as_object_mut()
        .map(|s| s.entry("source").or_insert_with(|| json!({})));
    if let Some(Value::Object(source)) = source {
        source.remove("git");
        if as_file == "Dockerfile" {
            source.remove("dockerfile");
        }
        source.insert("type".into(), json!("Binary"));
        source.insert(
            "binary".into(),
            if as_file.is_empty() {
                json!({})
            } else {
                json!({"asFile": as_file})
            },
        );
    }
    if let Some(r) = revision {
        spec["revision"] = r;
    }
    Ok(build)
}

/// Applies a BuildRequest's options (builds.md §4 step 6): `env` replaces
/// same-name strategy variables, `dockerStrategyOptions` merges build
/// arguments by name and sets `noCache`, `sourceStrategyOptions` sets
/// `incremental`, `revision` pins the commit.
pub fn apply_request(build: &mut Object, request: &Value) -> Result<(), Status> {
    let spec = build.body.entry("spec").or_insert_with(|| json!({}));
    let strategy_key = ["dockerStrategy", "sourceStrategy", "customStrategy"]
        .into_iter()
        .find(|k| spec.pointer(&format!("/strategy/{k}")).is_some());
    let merge = |list: &mut Value, extra: &Value| {
        if !list.is_array() {
            *list = json!([]);
        }
        for e in extra.as_array().into_iter().flatten() {
            let Some(name) = e.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(items) = list.as_array_mut() {
                items.retain(|x| x.get("name").and_then(Value::as_str) != Some(name));
                items.push(e.clone());
            }
        }
    };
    if let Some(env) = request.get("env").filter(|e| e.is_array()) {
        let Some(key) = strategy_key else {
            return Err(Status::bad_request(
                "the build has no strategy to set env on",
            ));
        };
        merge(&mut spec["strategy"][key]["env"], env);
    }
    if let Some(opts) = request
        .get("dockerStrategyOptions")
        .filter(|o| o.is_object())
    {
        if strategy_key != Some("dockerStrategy") {
            return Err(Status::bad_request(
                "dockerStrategyOptions are only valid for a Docker strategy build",
            ));
        }
        if let Some(args) = opts.get("buildArgs") {
            merge(&mut spec["strategy"]["dockerStrategy"]["buildArgs"], args);
        }
        if let Some(no_cache) = opts.get("noCache").filter(|v| v.is_boolean()) {
            spec["strategy"]["dockerStrategy"]["noCache"] = no_cache.clone();
        }
    }
    if let Some(opts) = request
        .get("sourceStrategyOptions")
        .filter(|o| o.is_object())
    {
        if strategy_key != Some("sourceStrategy") {
            return Err(Status::bad_request(
                "sourceStrategyOptions are only valid for a Source strategy build",
            ));
        }
        if let Some(incremental) = opts.get("incremental").filter(|v| v.is_boolean()) {
            spec["strategy"]["sourceStrategy"]["incremental"] = incremental.clone();
        }
    }
    if let Some(rev) = request.get("revision").filter(|r| r.is_object()) {
        spec["revision"] = rev.clone();
    }
    Ok(())
}

/// Re-runs `old` as the config's next build (`builds/NAME/clone`): the old
/// build's spec, a new number, a new cause.
pub fn clone_build(bc: &mut Object, old: &Object, causes: Vec<Value>) -> Result<Object, Status> {
    let old_spec = old.body.get("spec").cloned().unwrap_or(json!({}));
    if is_binary(&old_spec) {
        return Err(Status::bad_request(format!(
            "cannot clone binary build {}: start a new one with its input",
            old.metadata.name
        )));
    }
    // The old build's spec, already resolved, replaces the config's: a
    // placeholder satisfies the config's own image resolution.
    let mut build = build_from(bc, causes.clone(), Some("-"))?;
    let mut spec = old_spec;
    spec["triggeredBy"] = Value::Array(causes);
    build.body.insert("spec".into(), spec);
    build.metadata.annotations.insert(
        "openshift.io/build.clone-of".into(),
        old.metadata.name.clone(),
    );
    Ok(build)
}

/// A paused config builds nothing (builds.md §3).
pub fn refuse_paused(bc: &Object) -> Result<(), Status> {
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
    bc: &mut Object,
    causes: Vec<Value>,
    from_image: Option<&str>,
) -> Result<Object, Status> {
    refuse_paused(bc)?;
    let n = last_version(bc) + 1;
    let status = bc.body.entry("status").or_insert_with(|| json!({}));
    status["lastVersion"] = json!(n);
    let mut spec = bc.body.get("spec").cloned().unwrap_or(json!({}));
    if let Some(obj) = spec.as_object_mut() {
        for k in [
            "triggers",
            "runPolicy",
            "successfulBuildsHistoryLimit",
            "failedBuildsHistoryLimit",
        ] {
            obj.remove(k);
        }
    }
    if let Some(from) = strategy_from_mut(&mut spec) {
        if matches!(
            from.get("kind").and_then(Value::as_str),
            Some("ImageStreamTag" | "ImageStreamImage")
        ) {
            let image = from_image.ok_or_else(|| {
                let kind = from.get("kind").and_then(Value::as_str).unwrap_or_default();
                let what = if kind == "ImageStreamTag" {
                    "unable to find latest tagged image"
                } else {
                    "no such image in the stream"
                };
                Status::new(
                    Reason::Invalid,
                    format!(
                        "Error resolving {kind} {} in namespace {}: {what}",
                        from.get("name").and_then(Value::as_str).unwrap_or_default(),
                        bc.metadata.namespace
                    ),
                )
            })?;
            *from = json!({"kind": "DockerImage", "name": image});
        }
    }
    spec["triggeredBy"] = Value::Array(causes);
    let name = format!("{}-{n}", bc.metadata.name);
    let mut build = Object::new("Build", &bc.metadata.namespace, &name)
        .with("spec", spec)
        .with("status", json!({"phase": "New", "config": {"kind": "BuildConfig", "namespace": bc.metadata.namespace, "name": bc.metadata.name}}));
    build.metadata.labels = bc.metadata.labels.clone();
    let bc_label: String = bc.metadata.name.chars().take(63).collect();
    build
        .metadata
        .labels
        .insert(BUILD_CONFIG.into(), bc_label.clone());
    build.metadata.labels.insert("buildconfig".into(), bc_label);
    let policy = bc
        .body
        .get("spec")
        .and_then(|s| s.get("runPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("Serial");
    build
        .metadata
        .labels
        .insert(START_POLICY.into(), policy.into());
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
        let mut bc = Object::new("BuildConfig", "p", "shop").with(
            "spec",
            json!({"runPolicy": "Parallel", "strategy": {"type": "Docker", "dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:1"}}}, "triggers": [{"type": "ConfigChange"}]}),
        );
        let b = new_build(
            &mut bc,
            vec![json!({"message": "Manually triggered"})],
            Some("r/p/base@sha256:1"),
        )
        .unwrap();
        assert_eq!(b.metadata.name, "shop-1");
        assert_eq!(last_version(&bc), 1);
        assert_eq!(
            b.body["spec"]["strategy"]["dockerStrategy"]["from"],
            json!({"kind": "DockerImage", "name": "r/p/base@sha256:1"})
        );
        assert!(b.body["spec"].get("triggers").is_none());
        assert_eq!(b.metadata.labels[START_POLICY], "Parallel");
        assert_eq!(b.metadata.annotations[BUILD_NUMBER], "1");
        assert_eq!(b.body["status"]["phase"], "New");
        assert!(
            new_build(&mut bc, vec![], None).is_err(),
            "an unresolved base image is refused"
        );
    }
}
