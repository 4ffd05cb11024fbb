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

/// Makes Build `<bc>-<n>` and bumps the config's `lastVersion`. `from_image`
/// is the pull spec the strategy's ImageStreamTag `from` resolved to.
pub fn new_build(
    bc: &mut Object,
    causes: Vec<Value>,
    from_image: Option<&str>,
) -> Result<Object, Status> {
    if bc
        .metadata
        .annotations
        .get("openshift.io/build-config.paused")
        .map(String::as_str)
        == Some("true")
    {
        return Err(Status::bad_request(format!(
            "BuildConfig {:?} is paused",
            bc.metadata.name
        )));
    }
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
        if from.get("kind").and_then(Value::as_str) == Some("ImageStreamTag") {
            let image = from_image.ok_or_else(|| {
                Status::new(
                    Reason::Invalid,
                    format!(
                        "Error resolving ImageStreamTag {} in namespace {}: unable to find latest tagged image",
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
