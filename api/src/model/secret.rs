//! `Secret` (core v1). `stringData` is folded into `data` on the way in
//! (see `defaults.rs`), so stored Secrets hold base64 `data` only.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds;
use crate::meta::ObjectMeta;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
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
    pub string_data: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl super::Resource for Secret {
    const KIND: &'static kinds::KindInfo = &kinds::SECRET;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn set_type_meta(&mut self) {
        self.api_version = kinds::VERSION.into();
        self.kind = kinds::SECRET.kind.into();
    }
}

impl Secret {
    /// A key's value as text: `stringData` as is, or `data` decoded.
    pub fn value(&self, key: &str) -> Option<String> {
        String::from_utf8(self.bytes(key)?).ok()
    }

    /// A key's value as bytes.
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(v) = self.string_data.get(key) {
            return Some(v.clone().into_bytes());
        }
        base64::engine::general_purpose::STANDARD
            .decode(self.data.get(key)?)
            .ok()
    }

    /// Every key with its bytes (a `data` value that is not base64 is left
    /// out; validation refuses those on the way in).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        super::configmap::decoded_files(&self.data, &self.string_data)
    }

    /// The registry credentials of a Docker config Secret
    /// (`.dockerconfigjson` with `auths`, or the older `.dockercfg`), by
    /// registry host.
    pub fn registry_credentials(&self) -> BTreeMap<String, (String, String)> {
        let text = self
            .value(".dockerconfigjson")
            .or_else(|| self.value(".dockercfg"));
        let Some(config) = text.and_then(|t| serde_json::from_str::<DockerConfig>(&t).ok()) else {
            return BTreeMap::new();
        };
        let auths = match config {
            DockerConfig::Json { auths } => auths,
            DockerConfig::Legacy(auths) => auths,
        };
        let mut out = BTreeMap::new();
        for (host, entry) in auths {
            let decoded = entry
                .auth
                .as_deref()
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
            let username = entry.username.or_else(|| pair.map(|p| p.0.to_string()));
            let password = entry.password.or_else(|| pair.map(|p| p.1.to_string()));
            // "https://host/v1/" and "host" both name the registry host.
            let host = host
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            if let (Some(u), Some(p), false) = (username, password, host.is_empty()) {
                out.insert(host, (u, p));
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DockerConfig {
    Json { auths: BTreeMap<String, DockerAuth> },
    Legacy(BTreeMap<String, DockerAuth>),
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_config_secrets_of_both_formats() {
        let json_cfg = json!({"auths": {"https://reg.example:5000/v1/": {"auth": b64("u:p")}, "other": {"username": "a", "password": "b"}}});
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": b64(&json_cfg.to_string())}
        }))
        .unwrap();
        let creds = s.registry_credentials();
        assert_eq!(creds["reg.example:5000"], ("u".into(), "p".into()));
        assert_eq!(creds["other"], ("a".into(), "b".into()));
        let legacy: Secret = serde_json::from_value(json!({
            "stringData": {".dockercfg": json!({"r": {"auth": b64("x:y")}}).to_string()}
        }))
        .unwrap();
        assert_eq!(legacy.registry_credentials()["r"], ("x".into(), "y".into()));
        assert_eq!(legacy.value("missing"), None);
    }
}
