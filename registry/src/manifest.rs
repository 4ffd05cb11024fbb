//! Manifests: which kinds we take, what they reference, and the image
//! metadata a pushed image manifest carries in its config blob.

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::{Code, RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Layers that live elsewhere by definition; their blobs need not exist here.
const FOREIGN_LAYERS: &[&str] = &[
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

#[derive(Debug, Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub kind: Kind,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Value,
}

fn invalid(why: impl Into<String>) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid, why)
}

fn descriptor(v: &Value, field: &str) -> Result<Descriptor> {
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}: a descriptor needs a digest")))?;
    let digest = Digest::parse(digest).map_err(|e| invalid(format!("{field}: {e}")))?;
    let size = v
        .get("size")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
        .ok_or_else(|| invalid(format!("{field}: a descriptor needs a non-negative size")))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
    })
}

/// Parses and checks a manifest body sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("the manifest must be a JSON object"));
    }
    let declared = v.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    if v.get("schemaVersion").and_then(Value::as_i64) == Some(1)
        || header.is_some_and(|h| SCHEMA1.contains(&h))
    {
        return Err(invalid("Docker schema 1 manifests are not supported: push with a current client (schema 2 or OCI)"));
    }
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(invalid(format!(
                "the Content-Type {h} does not match the manifest's mediaType {d}"
            )));
        }
        (Some(h), _) => h.to_string(),
        (None, Some(d)) => d.to_string(),
        // OCI allows mediaType to be left out; the shape tells.
        (None, None) if v.get("manifests").is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    if v.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = descriptor(
                v.get("config")
                    .ok_or_else(|| invalid("an image manifest needs a config"))?,
                "config",
            )?;
            let layers = v
                .get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("an image manifest needs layers"))?
                .iter()
                .enumerate()
                .map(|(i, l)| descriptor(l, &format!("layers[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Kind::Image { config, layers }
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = v
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("an index needs manifests"))?
                .iter()
                .enumerate()
                .map(|(i, m)| descriptor(m, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Kind::Index { manifests }
        }
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}"
            )))
        }
    };
    let subject = v
        .get("subject")
        .map(|s| descriptor(s, "subject"))
        .transpose()?;
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| match &kind {
            Kind::Image { config, .. } if media_type == OCI_MANIFEST => {
                Some(config.media_type.clone())
            }
            _ => None,
        });
    Ok(Manifest {
        media_type,
        kind,
        subject,
        artifact_type,
        annotations: v.get("annotations").cloned().unwrap_or(Value::Null),
    })
}

impl Manifest {
    /// Blobs that must already be in the repository.
    pub fn required_blobs(&self) -> Vec<&Descriptor> {
        match &self.kind {
            Kind::Image { config, layers } => std::iter::once(config)
                .chain(
                    layers
                        .iter()
                        .filter(|l| !FOREIGN_LAYERS.contains(&l.media_type.as_str())),
                )
                .collect(),
            Kind::Index { .. } => vec![],
        }
    }

    /// Manifests that must already be in the repository.
    pub fn required_manifests(&self) -> Vec<&Descriptor> {
        match &self.kind {
            Kind::Index { manifests } => manifests.iter().collect(),
            Kind::Image { .. } => vec![],
        }
    }
}

/// The OpenShift `dockerImageMetadata` of an image, from its config blob.
pub fn image_metadata(id: &str, config: &Value, size: i64) -> Value {
    let c = config.get("config").cloned().unwrap_or(Value::Null);
    let pick = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "DockerImage",
        "apiVersion": "1.0",
        "Id": id,
        "Created": config.get("created").cloned().unwrap_or(Value::Null),
        "Architecture": config.get("architecture").cloned().unwrap_or(Value::Null),
        "Os": config.get("os").cloned().unwrap_or(Value::Null),
        "Author": config.get("author").cloned().unwrap_or(Value::Null),
        "Size": size,
        "Config": {
            "Entrypoint": pick("Entrypoint"),
            "Cmd": pick("Cmd"),
            "Env": pick("Env"),
            "Labels": pick("Labels"),
            "User": pick("User"),
            "WorkingDir": pick("WorkingDir"),
            "ExposedPorts": pick("ExposedPorts"),
            "Volumes": pick("Volumes"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    #[test]
    fn image_and_index() {
        let body = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"mediaType": "x", "digest": d(1), "size": 2}, "layers": [{"mediaType": "l", "digest": d(2), "size": 3}]});
        let m = parse(Some(DOCKER_MANIFEST), body.to_string().as_bytes()).unwrap();
        assert_eq!(m.required_blobs().len(), 2);
        let idx = json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": d(3), "size": 9}], "subject": {"mediaType": OCI_MANIFEST, "digest": d(4), "size": 1}});
        let m = parse(None, idx.to_string().as_bytes()).unwrap();
        assert_eq!(m.media_type, OCI_INDEX);
        assert_eq!(m.required_manifests().len(), 1);
        assert!(m.subject.is_some());
    }

    #[test]
    fn refusals() {
        assert!(parse(None, b"{\"schemaVersion\": 1, \"fsLayers\": []}")
            .unwrap_err()
            .message
            .contains("schema 1"));
        assert!(parse(None, b"not json").is_err());
        let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        assert!(parse(Some(DOCKER_MANIFEST), body.to_string().as_bytes())
            .unwrap_err()
            .message
            .contains("does not match"));
        let bad = json!({"schemaVersion": 2, "config": {"digest": "sha256:nothex", "size": 1}, "layers": []});
        assert!(parse(None, bad.to_string().as_bytes()).is_err());
    }
}
