//! Typed shapes of the kinds, as serde structs that keep every field they
//! do not name (`#[serde(flatten)] extra`), so reading and writing one back
//! loses nothing. Code that reasons about a kind's fields goes through
//! these rather than walking JSON by string paths.

pub mod build;
pub mod buildconfig;
pub mod configmap;
pub mod deploymentconfig;
pub mod image;
pub mod imagestream;
pub mod imageviews;
pub mod project;
pub mod resource;
pub mod rolebinding;
pub mod secret;

pub use build::{
    Build, BuildOutput, BuildRequest, BuildSource, BuildSpec, BuildStatus, BuildStrategy,
    BuildTriggerCause, ConfigMapBuildSource, DockerBuildStrategy, SecretBuildSource,
    SourceBuildStrategy,
};
pub use buildconfig::{
    BuildConfig, BuildConfigSpec, BuildConfigStatus, BuildTriggerPolicy, ImageChangeTrigger,
};
pub use configmap::ConfigMap;
pub use deploymentconfig::{
    DeploymentCause, DeploymentConfig, DeploymentConfigSpec, DeploymentConfigStatus,
    DeploymentTriggerPolicy, ImageChangeParams, ReplicationController,
};
pub use image::{Image, ImageLayer};
pub use imagestream::{
    ImageLookupPolicy, ImageStream, ImageStreamSpec, ImageStreamStatus, ImportPolicy,
    NamedTagEventList, ObjectReference, TagEvent, TagEventCondition, TagReference,
    TagReferencePolicy,
};
/// Kubernetes' own shapes the kinds embed.
pub use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference, PodTemplateSpec};
pub use project::Project;
pub use resource::Resource;
pub use rolebinding::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
pub use secret::Secret;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::Object;

/// The typed `field` (`spec`, `status`…) of `obj`; `None` when absent or
/// not of that shape (validation reports shapes on the way in).
pub fn field<T: DeserializeOwned>(obj: &Object, name: &str) -> Option<T> {
    serde_json::from_value(obj.body.get(name)?.clone()).ok()
}

/// Writes `value` back as `obj`'s `field`.
pub fn set_field<T: Serialize>(obj: &mut Object, name: &str, value: &T) {
    if let Ok(v) = serde_json::to_value(value) {
        obj.body.insert(name.into(), v);
    }
}
