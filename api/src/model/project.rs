//! `Project` (project.openshift.io/v1): a namespace and who asked for it
//! (its annotations).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource::resource;
use crate::kinds;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectStatus {
    /// `Active`, or `Terminating` while its objects are deleted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

resource!(
    /// A project.
    Project,
    kinds::PROJECT,
    spec: ProjectSpec,
    status: ProjectStatus
);
