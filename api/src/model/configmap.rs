//! `ConfigMap` (core v1): text `data` and base64 `binaryData`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds;
use crate::meta::ObjectMeta;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        default,
        deserialize_with = "crate::meta::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "crate::meta::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub binary_data: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl super::Resource for ConfigMap {
    const KIND: &'static kinds::KindInfo = &kinds::CONFIG_MAP;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn set_type_meta(&mut self) {
        self.api_version = kinds::VERSION.into();
        self.kind = kinds::CONFIG_MAP.kind.into();
    }
}

impl ConfigMap {
    /// Every key with its bytes: `data` as text, `binaryData` decoded (a
    /// value that is not base64 is left out).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        decoded_files(&self.binary_data, &self.data)
    }
}

/// Keys with their bytes, as ConfigMaps and Secrets hold them: base64
/// values decoded (one that is not base64 is left out), then text values,
/// which win on a shared key.
pub(super) fn decoded_files(
    encoded: &BTreeMap<String, String>,
    text: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = encoded
        .iter()
        .filter_map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
            Some((k.clone(), bytes))
        })
        .collect();
    for (k, v) in text {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}
