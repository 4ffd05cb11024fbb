//! The image views the REST layer computes from ImageStreams and Images
//! (none is stored): ImageStreamTag, ImageStreamImage, and the bodies of
//! ImageStreamMapping and ImageStreamImport.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Image, ImportPolicy, ObjectReference, TagReference, TagReferencePolicy};
use crate::meta::ObjectMeta;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamTag {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    /// The spec tag (`None` for a tag only the history knows).
    #[serde(default)]
    pub tag: Option<TagReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_policy: Option<super::ImageLookupPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub image: Image,
}

/// `POST imagestreammappings`: an image and the tag it goes to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamMapping {
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub image: Option<Image>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalName {
    #[serde(default)]
    pub name: String,
}

/// One image an ImageStreamImport asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportSpec {
    #[serde(default)]
    pub from: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<LocalName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<ImportPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_policy: Option<TagReferencePolicy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageImportSpec {
    pub fn insecure(&self) -> bool {
        self.import_policy.as_ref().and_then(|p| p.insecure) == Some(true)
    }

    /// The spec tag this import leaves in the stream.
    pub fn tag_reference(&self) -> TagReference {
        TagReference {
            from: Some(self.from.clone()),
            import_policy: self.import_policy.clone(),
            reference_policy: self.reference_policy.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryImportSpec {
    #[serde(default)]
    pub from: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<ImportPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_policy: Option<TagReferencePolicy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStreamImportSpec {
    /// False: a dry run that only reports what it found.
    #[serde(default)]
    pub import: bool,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub images: Vec<ImageImportSpec>,
    #[serde(default)]
    pub repository: Option<RepositoryImportSpec>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImport {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ImageStreamImportSpec,
    /// Filled in by the server: each image's outcome, the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
