//! What a build node and the API say to each other (served by `podspace
//! serve` under `/apis/podspace.io/v1/nodes/{node}/...`):
//!
//! - `POST lease` ([`LeaseRequest`]) → 200 [`LeaseGrant`], or 204 when no
//!   build became runnable within `waitSeconds` (a long poll);
//! - `POST heartbeat` ([`Heartbeat`]) → [`HeartbeatReply`]: renews the
//!   leases, says which builds to stop;
//! - `POST builds/{ns}/{name}/log?pos=N` (bytes) appends to the build log;
//! - `PUT builds/{ns}/{name}/details` ([`BuildReport`]) records progress
//!   and the result; a terminal phase ends the lease;
//! - `GET builds/{ns}/{name}/input` streams a binary build's input.
//!
//! Every call after the lease is refused unless the node holds the lease.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PREFIX: &str = "/apis/podspace.io/v1/nodes";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRequest {
    pub wait_seconds: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseGrant {
    /// The Build object, as stored when the node claimed it.
    pub build: Value,
    /// Renew at least this often (the heartbeat runs at a fraction of it).
    pub lease_seconds: u64,
    /// `host:port` of our registry, as the node's engine reaches it.
    pub registry: String,
    /// A token of the project's `builder` service account: pulls the base
    /// image, pushes the output.
    pub registry_token: String,
    /// Credentials for a private git repository (`source.sourceSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_auth: Option<GitAuth>,
    /// Whether the build has binary input to fetch.
    #[serde(default)]
    pub has_input: bool,
    /// Registry host → credentials for pushing the output elsewhere
    /// (`output.pushSecret`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub push_auths: BTreeMap<String, RegistryAuth>,
    /// Registry host → credentials for pulling base images from elsewhere
    /// (the strategy's `pullSecret`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pull_auths: BTreeMap<String, RegistryAuth>,
    /// The most bytes and entries a build context may unpack or send to
    /// (the server's `--max-binary-context`, `--max-binary-entries`).
    #[serde(default = "default_context_bytes")]
    pub max_context_bytes: u64,
    #[serde(default = "default_context_entries")]
    pub max_context_entries: u64,
    /// The cluster admin lets S2I's assemble run as root (`--s2i-allow-root`).
    #[serde(default)]
    pub allow_root_assemble: bool,
    /// `source.secrets` and `source.configMaps`, resolved in the build's
    /// project, in the order the spec lists them (secrets first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_files: Vec<InputFiles>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    Secret,
    ConfigMap,
}

/// The files of one Secret or ConfigMap a build reads at build time.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFiles {
    pub kind: InputKind,
    pub name: String,
    /// As the spec gives it: relative to the context (Docker) or to the
    /// builder's working directory (Source), or absolute (Source).
    #[serde(default)]
    pub destination_dir: String,
    /// Key (a file name) → the value, base64.
    pub files: BTreeMap<String, String>,
}

// A Secret's values never appear in debug output.
impl std::fmt::Debug for InputFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputFiles")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("destination_dir", &self.destination_dir)
            .field("keys", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl InputFiles {
    /// Key → bytes; a key that is no plain file name, or a value that is
    /// not base64, is an error (the API validates both on the way in).
    pub fn decoded(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        use base64::Engine;
        self.files
            .iter()
            .map(|(k, v)| {
                podspace_api::validation::config_key(k)
                    .map_err(|e| format!("{:?} {}: {e}", self.kind, self.name))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|e| format!("{:?} {} key {k}: {e}", self.kind, self.name))?;
                Ok((k.clone(), bytes))
            })
            .collect()
    }
}

fn default_context_bytes() -> u64 {
    4 << 30
}

fn default_context_entries() -> u64 {
    1_000_000
}

#[derive(Clone, Serialize, Deserialize)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

// The token never appears in debug output.
impl std::fmt::Debug for LeaseGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGrant")
            .field("build", &self.build.pointer("/metadata/name"))
            .field("lease_seconds", &self.lease_seconds)
            .field("registry", &self.registry)
            .field("git_auth", &self.git_auth)
            .field("has_input", &self.has_input)
            .field("push_auths", &self.push_auths)
            .field("pull_auths", &self.pull_auths)
            .field("input_files", &self.input_files)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitAuth {
    pub username: String,
    pub password: String,
}

// Never print secrets, not even in debug output.
impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// uids of the builds the node is running.
    pub builds: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReply {
    /// Builds to stop: cancelled by a user, or deleted.
    pub cancel: Vec<String>,
    /// Builds whose lease the node no longer holds: stop, report nothing.
    pub lost: Vec<String>,
}

/// Progress or result of a build. Absent fields are left as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `spec.revision`: the commit built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<podspace_api::model::build::SourceRevision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_docker_image_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_snippet: Option<String>,
}
