//! What a deployment is: the DeploymentConfig's template with the images
//! its triggers resolved, numbered, recorded as a ReplicationController.

use podspace_api::model::{self, DeploymentConfigSpec, DeploymentTriggerPolicy};
use podspace_api::Object;
use serde_json::{json, Value};
use sha2::Digest;

pub const DC_NAME: &str = "openshift.io/deployment-config.name";
pub const VERSION: &str = "openshift.io/deployment-config.latest-version";
pub const PHASE: &str = "openshift.io/deployment.phase";
pub const CAUSE: &str = "openshift.io/deployment.status-reason";
pub const TEMPLATE_HASH: &str = "podspace.io/template-hash";

/// The config's spec as far as rollouts go (default when unreadable:
/// validation let only readable ones in).
pub fn spec(dc: &Object) -> DeploymentConfigSpec {
    model::field(dc, "spec").unwrap_or_default()
}

pub fn triggers(dc: &Object) -> Vec<DeploymentTriggerPolicy> {
    spec(dc).triggers.unwrap_or_default()
}

pub fn latest_version(dc: &Object) -> i64 {
    dc.body
        .get("status")
        .and_then(|s| s.get("latestVersion"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
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
    for t in triggers(dc).iter().filter(|t| t.automatic()) {
        let Some(params) = t.image_change_params.as_ref() else {
            continue;
        };
        let Some(image) = params.last_image() else {
            continue;
        };
        let names = params.container_names.as_deref().unwrap_or_default();
        if let Some(containers) = template
            .pointer_mut("/spec/containers")
            .and_then(Value::as_array_mut)
        {
            for c in containers {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if names.is_empty() || names.iter().any(|n| n == name) {
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
    let replicas = spec(dc).replicas.unwrap_or(1);
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
            triggers(&dc)[0].image_source("p"),
            Some(("web".into(), "latest".into(), "p".into()))
        );
    }
}
