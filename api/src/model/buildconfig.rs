//! `BuildConfig` (build.openshift.io/v1): the template of its builds, its
//! triggers and run policy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::build::{BuildOutput, BuildSource, BuildSpec, BuildStrategy};
use super::resource::resource;
use super::ObjectReference;
use crate::kinds;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageChangeTrigger {
    /// The tag followed; absent: the strategy's `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(
        default,
        rename = "lastTriggeredImageID",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_triggered_image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildTriggerPolicy {
    /// `ImageChange`, `ConfigChange`, `GitHub`, `GitLab`, `Bitbucket`, `Generic`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_change: Option<ImageChangeTrigger>,
    /// The webhook triggers' fields (`podspace_webhooks` reads them).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<BuildTriggerPolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BuildSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<BuildStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BuildOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_builds_history_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_builds_history_limit: Option<i64>,
    /// The rest of the builds' spec (postCommit, resources, revision…).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

resource!(
    /// How to build an image, and when.
    BuildConfig,
    kinds::BUILD_CONFIG,
    spec: BuildConfigSpec,
    status: BuildConfigStatus
);

impl BuildConfigSpec {
    /// The spec its builds start from: everything but the config's own
    /// fields (triggers, run policy, history limits).
    pub fn build_spec(&self) -> Result<BuildSpec, serde_json::Error> {
        let mut template = BuildConfigSpec {
            triggers: None,
            run_policy: None,
            successful_builds_history_limit: None,
            failed_builds_history_limit: None,
            ..self.clone()
        };
        template.extra.remove("triggeredBy");
        serde_json::from_value(serde_json::to_value(template)?)
    }

    pub fn run_policy(&self) -> &str {
        self.run_policy.as_deref().unwrap_or("Serial")
    }

    pub fn is_binary(&self) -> bool {
        self.source.as_ref().is_some_and(|s| s.binary.is_some())
    }

    pub fn triggers(&self) -> &[BuildTriggerPolicy] {
        self.triggers.as_deref().unwrap_or_default()
    }

    /// The tag an ImageChange trigger follows: its own `from`, else the
    /// strategy's. `None` for other triggers and paused ones.
    pub fn followed_image<'a>(&'a self, t: &'a BuildTriggerPolicy) -> Option<&'a ObjectReference> {
        if t.kind != "ImageChange" {
            return None;
        }
        let ic = t.image_change.as_ref();
        if ic.and_then(|ic| ic.paused) == Some(true) {
            return None;
        }
        ic.and_then(|ic| ic.from.as_ref())
            .or_else(|| self.strategy.as_ref()?.from())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn followed_images_and_lossless_round_trip() {
        let spec = json!({
            "runPolicy": "Serial",
            "triggers": [
                {"type": "ImageChange", "imageChange": {}},
                {"type": "ImageChange", "imageChange": {"from": {"kind": "ImageStreamTag", "name": "base:1", "namespace": "shared"}, "lastTriggeredImageID": "r/base@sha256:1"}},
                {"type": "ImageChange", "imageChange": {"paused": true}},
                {"type": "GitHub", "github": {"secret": "s"}},
                {"type": "ConfigChange"}
            ],
            "strategy": {"type": "Source", "sourceStrategy": {"from": {"kind": "ImageStreamTag", "name": "python:3.11"}, "incremental": true}},
            "output": {"to": {"kind": "ImageStreamTag", "name": "app:latest"}}
        });
        let typed: BuildConfigSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), spec);
        let followed: Vec<Option<&str>> = typed
            .triggers()
            .iter()
            .map(|t| typed.followed_image(t).map(|f| f.name.as_str()))
            .collect();
        assert_eq!(
            followed,
            [Some("python:3.11"), Some("base:1"), None, None, None]
        );
    }
}
