//! What a deployment is: the DeploymentConfig's template with the images
//! its triggers resolved, numbered, recorded as a ReplicationController.

use podspace_api::Object;
use serde_json::{json, Value};
use sha2::Digest;

pub const DC_NAME: &str = "openshift.io/deployment-config.name";
pub const VERSION: &str = "openshift.io/deployment-config.latest-version";
pub const PHASE: &str = "openshift.io/deployment.phase";
pub const CAUSE: &str = "openshift.io/deployment.status-reason";
pub const TEMPLATE_HASH: &str = "podspace.io/template-hash";

pub fn triggers(dc: &Object) -> Vec<Value> {
    dc.body
        .get("spec")
        .and_then(|s| s.get("triggers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub fn latest_version(dc: &Object) -> i64 {
    dc.body
        .get("status")
        .and_then(|s| s.get("latestVersion"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `(stream, tag, namespace)` of an ImageChange trigger.
pub fn image_source(trigger: &Value, dc_ns: &str) -> Option<(String, String, String)> {
    if trigger.get("type").and_then(Value::as_str) != Some("ImageChange") {
        return None;
    }
    let from = trigger.get("imageChangeParams")?.get("from")?;
    if from.get("kind").and_then(Value::as_str) != Some("ImageStreamTag") {
        return None;
    }
    let (is, tag) = podspace_api::imagestreams::split_istag(from.get("name")?.as_str()?)?;
    let ns = from
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(dc_ns);
    Some((is.to_string(), tag.to_string(), ns.to_string()))
}

pub fn automatic(trigger: &Value) -> bool {
    trigger
        .pointer("/imageChangeParams/automatic")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// The template as it will be deployed: every container an ImageChange
/// trigger names gets that trigger's last image.
pub fn resolved_template(dc: &Object) -> Value {
    let mut template = dc
        .body
        .get("spec")
        .and_then(|s| s.get("template"))
        .cloned()
        .unwrap_or(json!({}));
    // A trigger that is not automatic (after `rollout undo`) leaves the
    // template as it is.
    for t in triggers(dc).into_iter().filter(automatic) {
        let Some(image) = t
            .pointer("/imageChangeParams/lastTriggeredImage")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
        else {
            continue;
        };
        let names: Vec<String> = t
            .pointer("/imageChangeParams/containerNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(containers) = template
            .pointer_mut("/spec/containers")
            .and_then(Value::as_array_mut)
        {
            for c in containers {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if names.is_empty() || names.contains(&name) {
                    c["image"] = json!(image);
                }
            }
        }
    }
    template
}

pub fn template_hash(template: &Value) -> String {
    hex::encode(sha2::Sha256::digest(
        serde_json::to_vec(template).unwrap_or_default(),
    ))
}

/// Bumps `latestVersion` and returns the deployment record for it.
pub fn deploy(dc: &mut Object, cause: Value) -> Object {
    let version = latest_version(dc) + 1;
    let name = dc.metadata.name.clone();
    let ns = dc.metadata.namespace.clone();
    let mut template = resolved_template(dc);
    let hash = template_hash(&template);
    // The images the triggers chose become the config's own template too.
    if let Some(spec) = dc.body.get_mut("spec") {
        spec["template"] = template.clone();
    }
    let status = dc.body.entry("status").or_insert_with(|| json!({}));
    status["latestVersion"] = json!(version);
    status["details"] = json!({"message": cause.get("message").cloned().unwrap_or(json!("")), "causes": [cause.clone()]});
    let labels = template
        .pointer_mut("/metadata/labels")
        .filter(|l| l.is_object());
    match labels {
        Some(l) => {
            l["deployment"] = json!(format!("{name}-{version}"));
            l["deploymentconfig"] = json!(name);
        }
        None => {
            template["metadata"] = json!({"labels": {"deployment": format!("{name}-{version}"), "deploymentconfig": name}});
        }
    }
    let replicas = dc
        .body
        .get("spec")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let mut selector = dc
        .body
        .get("spec")
        .and_then(|s| s.get("selector"))
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    selector["deployment"] = json!(format!("{name}-{version}"));
    selector["deploymentconfig"] = json!(name);
    let mut rc = Object::new("ReplicationController", &ns, &format!("{name}-{version}")).with(
        "spec",
        json!({"replicas": replicas, "selector": selector, "template": template}),
    );
    rc.metadata.labels.insert(DC_NAME.into(), name.clone());
    let a = &mut rc.metadata.annotations;
    a.insert(DC_NAME.into(), name);
    a.insert(VERSION.into(), version.to_string());
    a.insert(PHASE.into(), "New".into());
    a.insert(
        CAUSE.into(),
        cause
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Manual")
            .to_string(),
    );
    a.insert(TEMPLATE_HASH.into(), hash);
    a.insert(
        "openshift.io/deployment.replicas".into(),
        replicas.to_string(),
    );
    rc.metadata.extra.insert(
        "ownerReferences".into(),
        json!([{"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig", "name": dc.metadata.name, "uid": dc.metadata.uid, "controller": true}]),
    );
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_carries_the_triggered_image() {
        let mut dc = Object::new("DeploymentConfig", "p", "web").with(
            "spec",
            json!({
                "replicas": 3,
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "old"}, {"name": "side", "image": "side:1"}]}},
                "triggers": [{"type": "ImageChange", "imageChangeParams": {"containerNames": ["web"], "from": {"kind": "ImageStreamTag", "name": "web:latest"}, "lastTriggeredImage": "r/p/web@sha256:1"}}]
            }),
        );
        let rc = deploy(&mut dc, json!({"type": "ImageChange"}));
        assert_eq!(rc.metadata.name, "web-1");
        assert_eq!(
            rc.body["spec"]["template"]["spec"]["containers"][0]["image"],
            "r/p/web@sha256:1"
        );
        assert_eq!(
            rc.body["spec"]["template"]["spec"]["containers"][1]["image"],
            "side:1"
        );
        assert_eq!(rc.body["spec"]["replicas"], 3);
        assert_eq!(rc.body["spec"]["selector"]["deployment"], "web-1");
        assert_eq!(latest_version(&dc), 1);
        assert_eq!(
            dc.body["spec"]["template"]["spec"]["containers"][0]["image"],
            "r/p/web@sha256:1"
        );
        assert_eq!(
            image_source(&triggers(&dc)[0], "p"),
            Some(("web".into(), "latest".into(), "p".into()))
        );
    }
}
