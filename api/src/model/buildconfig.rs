//! `BuildConfig.spec` (build.openshift.io/v1), as far as the triggers and
//! the strategy image are reasoned about.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ObjectReference;

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

/// One strategy's settings, as far as its builder image goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StrategyImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildStrategy {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_strategy: Option<StrategyImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_strategy: Option<StrategyImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_strategy: Option<StrategyImage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildStrategy {
    /// The image the strategy builds from (Docker's is optional).
    pub fn from(&self) -> Option<&ObjectReference> {
        [
            &self.docker_strategy,
            &self.source_strategy,
            &self.custom_strategy,
        ]
        .into_iter()
        .find_map(|s| s.as_ref()?.from.as_ref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<BuildTriggerPolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<BuildStrategy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildConfigSpec {
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
