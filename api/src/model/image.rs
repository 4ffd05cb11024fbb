//! `Image` (image.openshift.io/v1, cluster-scoped, named by digest): what
//! the registry or an import learnt about one manifest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds;
use crate::meta::ObjectMeta;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayer {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_reference: String,
    /// The image's configuration in Docker's shape (`Config.Labels`…):
    /// free-form, as the image's author wrote it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub docker_image_metadata: Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_metadata_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_image_layers: Vec<ImageLayer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_manifest_media_type: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl super::Resource for Image {
    const KIND: &'static kinds::KindInfo = &kinds::IMAGE;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn set_type_meta(&mut self) {
        self.api_version = kinds::IMAGE.api_version();
        self.kind = kinds::IMAGE.kind.into();
    }
}

impl Image {
    /// A label of the image's configuration.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.docker_image_metadata
            .get("Config")?
            .get("Labels")?
            .get(name)?
            .as_str()
    }
}
