//! Manifests: which kinds we take, what they reference, and the image
//! metadata an image manifest's config blob carries.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::digest::Digest;

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

/// Why a manifest was refused, said to whoever pushed it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

type Result<T> = std::result::Result<T, ManifestError>;

fn invalid(why: impl Into<String>) -> ManifestError {
    ManifestError(why.into())
}

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

/// A manifest as sent: every field optional here, so that what is missing
/// is said in our words, and unknown fields ignored (the stored body keeps
/// them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<WireDescriptor>,
    layers: Option<Vec<WireDescriptor>>,
    manifests: Option<Vec<WireDescriptor>>,
    subject: Option<WireDescriptor>,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDescriptor {
    #[serde(default)]
    media_type: String,
    digest: Option<String>,
    size: Option<i64>,
}

impl WireDescriptor {
    fn check(self, field: &str) -> Result<Descriptor> {
        let digest = self
            .digest
            .ok_or_else(|| invalid(format!("{field}: a descriptor needs a digest")))?;
        let digest = Digest::parse(&digest).map_err(|e| invalid(format!("{field}: {e}")))?;
        let size = self
            .size
            .filter(|s| *s >= 0)
            .ok_or_else(|| invalid(format!("{field}: a descriptor needs a non-negative size")))?;
        Ok(Descriptor {
            media_type: self.media_type,
            digest,
            size,
        })
    }
}

fn all(list: Vec<WireDescriptor>, field: &str) -> Result<Vec<Descriptor>> {
    list.into_iter()
        .enumerate()
        .map(|(i, d)| d.check(&format!("{field}[{i}]")))
        .collect()
}

/// Parses and checks a manifest body sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest> {
    // A struct also deserializes from a JSON array; a manifest is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => invalid("the manifest must be a JSON object"),
                Err(e) => invalid(format!("the manifest is not valid JSON: {e}")),
            },
        );
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let wire: Wire = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            invalid(format!("{path}: {inner}"))
        } else {
            invalid(format!("the manifest is not valid JSON: {inner}"))
        }
    })?;
    let declared = wire.media_type.as_deref();
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    if wire.schema_version == Some(1) || header.is_some_and(|h| SCHEMA1.contains(&h)) {
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
        (None, None) if wire.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    if wire.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = wire
                .config
                .ok_or_else(|| invalid("an image manifest needs a config"))?
                .check("config")?;
            let layers = wire
                .layers
                .ok_or_else(|| invalid("an image manifest needs layers"))?;
            Kind::Image {
                config,
                layers: all(layers, "layers")?,
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = wire
                .manifests
                .ok_or_else(|| invalid("an index needs manifests"))?;
            Kind::Index {
                manifests: all(manifests, "manifests")?,
            }
        }
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}"
            )))
        }
    };
    let subject = wire.subject.map(|s| s.check("subject")).transpose()?;
    let artifact_type = wire.artifact_type.or_else(|| match &kind {
        Kind::Image { config, .. } if media_type == OCI_MANIFEST => Some(config.media_type.clone()),
        _ => None,
    });
    Ok(Manifest {
        media_type,
        kind,
        subject,
        artifact_type,
        annotations: wire.annotations,
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

/// The parts of an image config blob that OpenShift's image metadata
/// shows; anything else in the blob is left alone.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageConfig {
    created: Value,
    architecture: Value,
    os: Value,
    author: Value,
    config: Option<RunConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct RunConfig {
    entrypoint: Value,
    cmd: Value,
    env: Value,
    labels: Value,
    user: Value,
    working_dir: Value,
    exposed_ports: Value,
    volumes: Value,
}

/// The OpenShift `dockerImageMetadata` of an image, from its config blob
/// (an unreadable config gives empty fields, as a missing one does).
pub fn image_metadata(id: &str, config: &Value, size: i64) -> Value {
    let c = ImageConfig::deserialize(config).unwrap_or_default();
    let run = c.config.unwrap_or_default();
    json!({
        "kind": "DockerImage",
        "apiVersion": "1.0",
        "Id": id,
        "Created": c.created,
        "Architecture": c.architecture,
        "Os": c.os,
        "Author": c.author,
        "Size": size,
        "Config": {
            "Entrypoint": run.entrypoint,
            "Cmd": run.cmd,
            "Env": run.env,
            "Labels": run.labels,
            "User": run.user,
            "WorkingDir": run.working_dir,
            "ExposedPorts": run.exposed_ports,
            "Volumes": run.volumes,
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
        let refused = |ct: Option<&str>, body: &str| parse(ct, body.as_bytes()).unwrap_err().0;
        assert!(refused(None, r#"{"schemaVersion": 1, "fsLayers": []}"#).contains("schema 1"));
        assert!(refused(None, "not json").contains("not valid JSON"));
        assert!(refused(None, "[1, 2]").contains("must be a JSON object"));
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        assert!(refused(Some(DOCKER_MANIFEST), &index.to_string()).contains("does not match"));
        let bad = json!({"schemaVersion": 2, "config": {"digest": "sha256:nothex", "size": 1}, "layers": []});
        assert!(refused(None, &bad.to_string()).starts_with("config: "));
        let no_size = json!({"schemaVersion": 2, "config": {"digest": d(1), "size": 1}, "layers": [{"digest": d(2)}]});
        assert_eq!(
            refused(None, &no_size.to_string()),
            "layers[0]: a descriptor needs a non-negative size"
        );
        let typed = json!({"schemaVersion": 2, "config": {"digest": 7, "size": 1}, "layers": []});
        assert!(refused(None, &typed.to_string()).starts_with("config.digest: invalid type"));
    }

    #[test]
    fn metadata_from_a_config_blob() {
        let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"], "User": "1001", "Labels": {"a": "b"}}, "rootfs": {}});
        let m = image_metadata("sha256:x", &config, 10);
        assert_eq!(m["Architecture"], "amd64");
        assert_eq!(m["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(m["Config"]["User"], "1001");
        assert_eq!(m["Config"]["Labels"]["a"], "b");
        assert_eq!(m["Config"]["WorkingDir"], Value::Null);
        assert_eq!(
            image_metadata("sha256:x", &json!("junk"), 1)["Os"],
            Value::Null
        );
    }
}
