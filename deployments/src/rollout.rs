//! What a deployment is: the DeploymentConfig's template with the images
//! its triggers resolved, numbered, recorded as a ReplicationController.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use podspace_api::model::{DeploymentCause, DeploymentConfig, ReplicationController, Resource};
use serde_json::json;
use sha2::Digest;

pub const DC_NAME: &str = "openshift.io/deployment-config.name";
pub const VERSION: &str = "openshift.io/deployment-config.latest-version";
pub const PHASE: &str = "openshift.io/deployment.phase";
pub const CAUSE: &str = "openshift.io/deployment.status-reason";
pub const TEMPLATE_HASH: &str = "podspace.io/template-hash";

pub fn latest_version(dc: &DeploymentConfig) -> i64 {
    dc.status.latest_version.unwrap_or(0)
}

/// The template as it will be deployed: every container an ImageChange
/// trigger names gets that trigger's last image.
pub fn resolved_template(dc: &DeploymentConfig) -> PodTemplateSpec {
    let mut template = dc.spec.template.clone().unwrap_or_default();
    // A trigger that is not automatic (after `rollout undo`) leaves the
    // template as it is.
    for t in dc.spec.triggers().iter().filter(|t| t.automatic()) {
        let Some(params) = t.image_change_params.as_ref() else {
            continue;
        };
        let Some(image) = params.last_image() else {
            continue;
        };
        let names = params.container_names.as_deref().unwrap_or_default();
        for c in template.spec.iter_mut().flat_map(|s| &mut s.containers) {
            if names.is_empty() || names.contains(&c.name) {
                c.image = Some(image.to_string());
            }
        }
    }
    template
}

/// Whether some container has no image to run.
pub fn lacks_an_image(template: &PodTemplateSpec) -> bool {
    template
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .any(|c| c.image.as_deref().is_none_or(|i| i.trim().is_empty()))
}

/// A digest of the template's canonical JSON (keys sorted).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let canonical = serde_json::to_value(template).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(
        serde_json::to_vec(&canonical).unwrap_or_default(),
    ))
}

/// Bumps `latestVersion` and returns the deployment record for it.
pub fn deploy(dc: &mut DeploymentConfig, cause: DeploymentCause) -> ReplicationController {
    let version = latest_version(dc) + 1;
    let name = dc.metadata.name.clone();
    let deployment = format!("{name}-{version}");
    let mut template = resolved_template(dc);
    let hash = template_hash(&template);
    // The images the triggers chose become the config's own template too.
    dc.spec.template = Some(template.clone());
    dc.status.latest_version = Some(version);
    let details = dc.status.details.get_or_insert_with(Default::default);
    details.message = cause.message.clone().unwrap_or_default();
    details.causes = vec![cause.clone()];
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    labels.insert("deployment".into(), deployment.clone());
    labels.insert("deploymentconfig".into(), name.clone());
    let replicas = dc.spec.replicas.unwrap_or(1);
    let mut selector = dc.spec.selector.clone().unwrap_or_default();
    selector.insert("deployment".into(), deployment.clone());
    selector.insert("deploymentconfig".into(), name.clone());
    let mut rc = ReplicationController::named(&dc.metadata.namespace, &deployment);
    rc.spec.replicas = Some(replicas);
    rc.spec.selector = selector;
    rc.spec.template = Some(template);
    rc.metadata.labels.insert(DC_NAME.into(), name.clone());
    let a = &mut rc.metadata.annotations;
    a.insert(DC_NAME.into(), name);
    a.insert(VERSION.into(), version.to_string());
    a.insert(PHASE.into(), "New".into());
    let reason = if cause.kind.is_empty() {
        "Manual"
    } else {
        &cause.kind
    };
    a.insert(CAUSE.into(), reason.to_string());
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

/// A cause of the given type with a message.
pub fn cause(kind: &str, message: &str) -> DeploymentCause {
    DeploymentCause {
        kind: kind.into(),
        message: Some(message.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_carries_the_triggered_image() {
        let mut dc: DeploymentConfig = serde_json::from_value(json!({
            "metadata": {"namespace": "p", "name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "old"}, {"name": "side", "image": "side:1"}]}},
                "triggers": [{"type": "ImageChange", "imageChangeParams": {"containerNames": ["web"], "from": {"kind": "ImageStreamTag", "name": "web:latest"}, "lastTriggeredImage": "r/p/web@sha256:1"}}]
            }
        }))
        .unwrap();
        let rc = deploy(&mut dc, cause("ImageChange", "image change"));
        let rc = serde_json::to_value(rc).unwrap();
        assert_eq!(rc["metadata"]["name"], "web-1");
        assert_eq!(rc["kind"], "ReplicationController");
        let containers = &rc["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "r/p/web@sha256:1");
        assert_eq!(containers[1]["image"], "side:1");
        assert_eq!(rc["spec"]["replicas"], 3);
        assert_eq!(rc["spec"]["selector"]["deployment"], "web-1");
        assert_eq!(rc["spec"]["selector"]["app"], "web");
        assert_eq!(
            rc["spec"]["template"]["metadata"]["labels"]["deploymentconfig"],
            "web"
        );
        assert_eq!(rc["metadata"]["annotations"][CAUSE], "ImageChange");
        assert_eq!(latest_version(&dc), 1);
        let dc_template = dc.spec.template.as_ref().unwrap();
        assert_eq!(
            dc_template.spec.as_ref().unwrap().containers[0]
                .image
                .as_deref(),
            Some("r/p/web@sha256:1")
        );
        assert_eq!(
            dc.spec.triggers()[0].image_source("p"),
            Some(("web".into(), "latest".into(), "p".into()))
        );
    }
}
