//! `Build` and the parts of a build's spec it shares with `BuildConfig`
//! (build.openshift.io/v1): source, strategy, output, revision, causes and
//! status. Kubernetes' own shapes (env, secret references) are k8s-openapi's.

use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource::resource;
use super::ObjectReference;
use crate::kinds;

pub const NEW: &str = "New";
pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const ERROR: &str = "Error";
pub const CANCELLED: &str = "Cancelled";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitBuildSource {
    #[serde(default)]
    pub uri: String,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryBuildSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_file: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSource {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitBuildSource>,
    /// An inline Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryBuildSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_secret: Option<LocalObjectReference>,
    /// Secrets whose files the build sees at build time only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<SecretBuildSource>>,
    /// ConfigMaps whose files the build sees (and an S2I image keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_maps: Option<Vec<ConfigMapBuildSource>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `source.secrets[]`: a Secret's keys as files under `destinationDir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBuildSource {
    #[serde(default)]
    pub secret: LocalObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_dir: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `source.configMaps[]`: a ConfigMap's keys as files under `destinationDir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapBuildSource {
    #[serde(default)]
    pub config_map: LocalObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_dir: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerBuildStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_args: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_path: Option<String>,
    /// `Always` pulls the base image even when the node has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<LocalObjectReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceBuildStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// A URL to the builder's scripts, overriding its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<LocalObjectReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomBuildStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<LocalObjectReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildStrategy {
    /// `Docker`, `Source`, `Custom`, `JenkinsPipeline`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_strategy: Option<DockerBuildStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_strategy: Option<SourceBuildStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_strategy: Option<CustomBuildStrategy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildStrategy {
    /// The image the strategy builds from (Docker's is optional).
    pub fn from(&self) -> Option<&ObjectReference> {
        let docker = self.docker_strategy.as_ref().and_then(|s| s.from.as_ref());
        let source = self.source_strategy.as_ref().and_then(|s| s.from.as_ref());
        let custom = self.custom_strategy.as_ref().and_then(|s| s.from.as_ref());
        docker.or(source).or(custom)
    }

    /// The strategy's `from`, to resolve in place.
    pub fn from_mut(&mut self) -> Option<&mut ObjectReference> {
        if let Some(s) = &mut self.docker_strategy {
            if s.from.is_some() {
                return s.from.as_mut();
            }
        }
        if let Some(s) = &mut self.source_strategy {
            if s.from.is_some() {
                return s.from.as_mut();
            }
        }
        self.custom_strategy.as_mut()?.from.as_mut()
    }

    /// The strategy's build environment, whichever strategy it is.
    pub fn env(&self) -> &[EnvVar] {
        let env = if let Some(s) = &self.docker_strategy {
            &s.env
        } else if let Some(s) = &self.source_strategy {
            &s.env
        } else if let Some(s) = &self.custom_strategy {
            &s.env
        } else {
            return &[];
        };
        env.as_deref().unwrap_or_default()
    }

    pub fn env_mut(&mut self) -> Option<&mut Vec<EnvVar>> {
        let env = if let Some(s) = &mut self.docker_strategy {
            &mut s.env
        } else if let Some(s) = &mut self.source_strategy {
            &mut s.env
        } else {
            &mut self.custom_strategy.as_mut()?.env
        };
        Some(env.get_or_insert_with(Vec::new))
    }

    /// The Secret the strategy pulls its image with.
    pub fn pull_secret(&self) -> Option<&str> {
        let secret = if let Some(s) = &self.docker_strategy {
            &s.pull_secret
        } else if let Some(s) = &self.source_strategy {
            &s.pull_secret
        } else {
            &self.custom_strategy.as_ref()?.pull_secret
        };
        secret.as_ref().map(|s| s.name.as_str())
    }
}

/// Replaces same-name entries of `list` by `extra`'s, appending new names
/// (how a BuildRequest's env and build arguments apply).
pub fn merge_env(list: &mut Vec<EnvVar>, extra: &[EnvVar]) {
    for e in extra {
        list.retain(|x| x.name != e.name);
        list.push(e.clone());
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageLabel {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_labels: Option<Vec<ImageLabel>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildPostCommitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceControlUser {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitSourceRevision {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<SourceControlUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<SourceControlUser>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The commit's date (RFC 3339), for the image's labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub date: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The commit a build built (`{type: Git, git: {commit, author…}}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceRevision {
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSourceRevision>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SourceRevision {
    pub fn commit(&self) -> &str {
        self.git.as_ref().map_or("", |g| g.commit.as_str())
    }
}

/// Why a build was started (`spec.triggeredBy[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildTriggerCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_change_build: Option<ImageChangeCause>,
    /// The webhook causes (`githubWebHook`…), written by `podspace_webhooks`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageChangeCause {
    #[serde(default, rename = "imageID", skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ref: Option<ObjectReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BuildSource>,
    /// The commit to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<SourceRevision>,
    #[serde(default)]
    pub strategy: BuildStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BuildOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_commit: Option<BuildPostCommitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<Vec<BuildTriggerCause>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildSpec {
    pub fn is_binary(&self) -> bool {
        self.source.as_ref().is_some_and(|s| s.binary.is_some())
    }

    pub fn output_to(&self) -> Option<&ObjectReference> {
        self.output.as_ref()?.to.as_ref()
    }

    pub fn push_secret(&self) -> Option<&str> {
        let s = self.output.as_ref()?.push_secret.as_ref()?;
        Some(s.name.as_str())
    }

    pub fn inline_dockerfile(&self) -> Option<&str> {
        self.source.as_ref()?.dockerfile.as_deref()
    }

    pub fn context_dir(&self) -> &str {
        self.source
            .as_ref()
            .and_then(|s| s.context_dir.as_deref())
            .unwrap_or_default()
    }

    pub fn git(&self) -> Option<&GitBuildSource> {
        self.source.as_ref()?.git.as_ref()
    }

    pub fn source_secret(&self) -> Option<&str> {
        let s = self.source.as_ref()?.source_secret.as_ref()?;
        Some(s.name.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildStatusOutputTo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildStatusOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<BuildStatusOutputTo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildStatus {
    /// Empty reads as `New`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<String>,
    /// Nanoseconds, as OpenShift records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_docker_image_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<BuildStatusOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_snippet: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildStatus {
    pub fn phase(&self) -> &str {
        if self.phase.is_empty() {
            NEW
        } else {
            &self.phase
        }
    }

    pub fn image_digest(&self) -> Option<&str> {
        let d = &self.output.as_ref()?.to.as_ref()?.image_digest;
        (!d.is_empty()).then_some(d.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerStrategyOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_args: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStrategyOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `instantiate` and `clone` (and what a webhook asks for):
/// options applied to the one build it starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRequest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<Vec<BuildTriggerCause>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<SourceRevision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_strategy_options: Option<DockerStrategyOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_strategy_options: Option<SourceStrategyOptions>,
    /// Refuse unless the config's lastVersion is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

resource!(
    /// One run of a build.
    Build,
    kinds::BUILD,
    spec: BuildSpec,
    status: BuildStatus
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
    use serde_json::json;

    #[test]
    fn a_build_round_trips_losslessly() {
        let build = json!({
            "apiVersion": "build.openshift.io/v1",
            "kind": "Build",
            "metadata": {"name": "app-1", "namespace": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "serviceAccount": "builder",
                "source": {"type": "Git", "git": {"uri": "https://example.invalid/app.git", "ref": "main", "httpProxy": "x"}, "contextDir": "web", "sourceSecret": {"name": "git"}, "images": [{"from": {"kind": "ImageStreamTag", "name": "a:1"}}]},
                "revision": {"type": "Git", "git": {"commit": "abc"}},
                "strategy": {"type": "Source", "sourceStrategy": {"from": {"kind": "DockerImage", "name": "r/p/py@sha256:1"}, "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], "incremental": true, "pullSecret": {"name": "pull"}}},
                "output": {"to": {"kind": "ImageStreamTag", "name": "app:latest"}, "imageLabels": [{"name": "l", "value": "v"}]},
                "resources": {"limits": {"cpu": "1"}},
                "postCommit": {"script": "make test"},
                "completionDeadlineSeconds": 600,
                "triggeredBy": [{"message": "Image change", "imageChangeBuild": {"imageID": "r@sha256:1", "fromRef": {"kind": "ImageStreamTag", "name": "py:3"}}}, {"message": "GitHub WebHook", "githubWebHook": {"revision": {}, "secret": "<secret>"}}]
            },
            "status": {"phase": "Complete", "config": {"kind": "BuildConfig", "namespace": "p", "name": "app"}, "duration": 5, "output": {"to": {"imageDigest": "sha256:2"}}, "stages": []}
        });
        let typed: Build = serde_json::from_value(build.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), build);
        assert_eq!(typed.spec.strategy.pull_secret(), Some("pull"));
        assert_eq!(typed.spec.strategy.env().len(), 2);
        assert_eq!(typed.status.image_digest(), Some("sha256:2"));
        let obj = typed.to_object().unwrap();
        assert_eq!(Build::from_object(&obj).unwrap(), typed);
    }

    #[test]
    fn an_empty_build_reads_as_new() {
        let b: Build =
            serde_json::from_value(json!({"metadata": {"name": "b"}, "status": null})).unwrap();
        assert_eq!(b.status.phase(), NEW);
        assert!(!b.spec.is_binary());
    }
}
