//! `DeploymentConfig` (apps.openshift.io/v1) and the `ReplicationController`
//! each of its versions is recorded as. The pod template is Kubernetes'
//! own shape (k8s-openapi); validation refuses fields Kubernetes does not
//! define there, so a template is stored, deployed and hashed whole.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource::resource;
use super::ObjectReference;
use crate::kinds;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageChangeParams {
    /// Absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_triggered_image: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageChangeParams {
    pub fn automatic(&self) -> bool {
        self.automatic.unwrap_or(true)
    }

    /// The last image, if there is one.
    pub fn last_image(&self) -> Option<&str> {
        self.last_triggered_image
            .as_deref()
            .filter(|i| !i.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentTriggerPolicy {
    /// `ConfigChange` or `ImageChange`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_change_params: Option<ImageChangeParams>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeploymentTriggerPolicy {
    /// `(stream, tag, project)` an ImageChange trigger follows; `dc_ns` is
    /// the project when the trigger names none.
    pub fn image_source(&self, dc_ns: &str) -> Option<(String, String, String)> {
        if self.kind != "ImageChange" {
            return None;
        }
        let from = self.image_change_params.as_ref()?.from.as_ref()?;
        if from.kind != "ImageStreamTag" {
            return None;
        }
        let (is, tag) = crate::imagestreams::split_istag(&from.name)?;
        let ns = from
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(dc_ns);
        Some((is.to_string(), tag.to_string(), ns.to_string()))
    }

    /// An ImageChange trigger that moves the template (absent `automatic`
    /// is true; `rollout undo` turns it off).
    pub fn automatic(&self) -> bool {
        self.image_change_params
            .as_ref()
            .is_none_or(ImageChangeParams::automatic)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<DeploymentTriggerPolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a version replaces the previous one (run by the deployment runtime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStrategy {
    /// `Rolling`, `Recreate` or `Custom`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentCauseImageTrigger {
    #[serde(default)]
    pub from: ObjectReference,
}

/// Why a version was deployed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCause {
    /// `ConfigChange`, `ImageChange` or `Manual`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_trigger: Option<DeploymentCauseImageTrigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetails {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub causes: Vec<DeploymentCause>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<DeploymentDetails>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

resource!(
    /// How to run an application's pods, and when to roll out a new version.
    DeploymentConfig,
    kinds::DEPLOYMENT_CONFIG,
    spec: DeploymentConfigSpec,
    status: DeploymentConfigStatus
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationControllerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationControllerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

resource!(
    /// One deployed version of a DeploymentConfig.
    ReplicationController,
    kinds::REPLICATION_CONTROLLER,
    spec: ReplicationControllerSpec,
    status: ReplicationControllerStatus
);

impl DeploymentConfigSpec {
    pub fn triggers(&self) -> &[DeploymentTriggerPolicy] {
        self.triggers.as_deref().unwrap_or_default()
    }

    pub fn has_config_change(&self) -> bool {
        self.triggers().iter().any(|t| t.kind == "ConfigChange")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_and_lossless_round_trip() {
        let spec = json!({
            "replicas": 3,
            "selector": {"app": "web"},
            "template": {"spec": {"containers": [{"name": "web", "image": " "}]}},
            "triggers": [
                {"type": "ConfigChange"},
                {"type": "ImageChange", "imageChangeParams": {"automatic": false, "containerNames": ["web"],
                  "from": {"kind": "ImageStreamTag", "name": "web:latest", "namespace": "shared"},
                  "lastTriggeredImage": "r/web@sha256:1"}},
                {"type": "ImageChange", "imageChangeParams": {"from": {"kind": "DockerImage", "name": "x"}}}
            ],
            "strategy": {"type": "Rolling"}
        });
        let typed: DeploymentConfigSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), spec);
        assert!(typed.has_config_change());
        let t = &typed.triggers()[1];
        assert_eq!(
            t.image_source("p"),
            Some(("web".into(), "latest".into(), "shared".into()))
        );
        assert!(!t.automatic());
        assert!(typed.triggers()[2].automatic());
        assert_eq!(typed.triggers()[2].image_source("p"), None);
    }
}
