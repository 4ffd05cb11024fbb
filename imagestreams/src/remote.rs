//! Reading a manifest and its config from another registry over the OCI
//! distribution protocol, anonymously or with a pull secret, following the
//! Docker token flow when challenged.

use base64::Engine;
use podspace_oci::digest::Digest;
use podspace_oci::manifest::{self, Kind};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0:?} is not an image reference: use host[:port]/repository[:tag|@digest]")]
    BadReference(String),
    #[error("the registry answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error("cannot reach the registry: {0}")]
    Network(String),
    #[error("the registry sent an unusable manifest: {0}")]
    Manifest(String),
    #[error("no linux/amd64 image in the manifest list")]
    NoPlatform,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

impl RemoteRef {
    pub fn parse(s: &str) -> Result<RemoteRef, ImportError> {
        let bad = || ImportError::BadReference(s.to_string());
        let (registry, rest) = s.split_once('/').ok_or_else(bad)?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost")
            || rest.is_empty()
        {
            return Err(bad());
        }
        let (repository, reference) = match rest.split_once('@') {
            Some((r, d)) => (r.to_string(), d.to_string()),
            None => match rest.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (rest.to_string(), "latest".to_string()),
            },
        };
        if repository.is_empty() || reference.is_empty() {
            return Err(bad());
        }
        Ok(RemoteRef {
            registry: registry.to_string(),
            repository,
            reference,
        })
    }

    /// A reference as the docker CLI reads it: a first component without
    /// `.` or `:` (and not `localhost`) is a Docker Hub repository, a
    /// single-component one under `library/` (`busybox` →
    /// `docker.io/library/busybox:latest`).
    pub fn parse_docker(s: &str) -> Result<RemoteRef, ImportError> {
        let first = s.split('/').next().unwrap_or_default();
        let has_host =
            s.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
        if has_host {
            return RemoteRef::parse(s);
        }
        let path = if s.contains('/') {
            s.to_string()
        } else {
            format!("library/{s}")
        };
        RemoteRef::parse(&format!("docker.io/{path}"))
    }

    /// `registry/repository:tag` or `registry/repository@digest`.
    pub fn whole(&self) -> String {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        format!(
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }

    /// Loopback registries and `insecure` ones are spoken to over HTTP;
    /// Docker Hub's API lives on its own host.
    fn base(&self, insecure: bool) -> String {
        let host = self.registry.split(':').next().unwrap_or_default();
        let plain = insecure || host == "localhost" || host.starts_with("127.") || host == "[::1]";
        let registry = match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            r => r,
        };
        format!("{}://{registry}", if plain { "http" } else { "https" })
    }
}

/// What an import learned.
#[derive(Debug, Clone)]
pub struct Imported {
    pub digest: String,
    pub media_type: String,
    /// `registry/repository@digest`
    pub reference: String,
    pub manifest: manifest::Manifest,
    pub manifest_size: usize,
    pub config: Value,
}

pub struct Client {
    http: reqwest::Client,
}

const ACCEPTED: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                        application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn net(e: reqwest::Error) -> ImportError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    ImportError::Network(msg)
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn challenge(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let v = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let rest = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    let mut out = Vec::new();
    for part in rest.split(',') {
        let (k, v) = part.split_once('=')?;
        out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
    }
    Some(out)
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        }
    }

    /// GET with the token flow: on a Bearer challenge, fetch a token (with
    /// `creds` if given) and try once more.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        creds: Option<&(String, String)>,
        token: &mut Option<String>,
    ) -> Result<reqwest::Response, ImportError> {
        for attempt in 0..2 {
            let mut rb = self.http.get(url);
            if let Some(a) = accept {
                rb = rb.header(ACCEPT, a);
            }
            match (token.as_ref(), creds) {
                (Some(t), _) => rb = rb.header(AUTHORIZATION, format!("Bearer {t}")),
                (None, Some((u, p))) => rb = rb.basic_auth(u, Some(p)),
                _ => {}
            }
            let resp = rb.send().await.map_err(net)?;
            if resp.status() == 401 && attempt == 0 {
                if let Some(params) = challenge(resp.headers()) {
                    let get = |k: &str| {
                        params
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let mut turl = format!("{}?service={}", get("realm"), get("service"));
                    if !get("scope").is_empty() {
                        turl.push_str(&format!("&scope={}", get("scope")));
                    }
                    let mut trb = self.http.get(&turl);
                    if let Some((u, p)) = creds {
                        trb = trb.header(
                            AUTHORIZATION,
                            format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD
                                    .encode(format!("{u}:{p}"))
                            ),
                        );
                    }
                    let tresp = trb.send().await.map_err(net)?;
                    if !tresp.status().is_success() {
                        return Err(ImportError::Status {
                            status: tresp.status().as_u16(),
                            url: turl,
                        });
                    }
                    let body: Value = tresp.json().await.map_err(net)?;
                    *token = body
                        .get("token")
                        .or_else(|| body.get("access_token"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    continue;
                }
            }
            if !resp.status().is_success() {
                return Err(ImportError::Status {
                    status: resp.status().as_u16(),
                    url: url.to_string(),
                });
            }
            return Ok(resp);
        }
        Err(ImportError::Status {
            status: 401,
            url: url.to_string(),
        })
    }

    /// The tags of `r`'s repository (following `Link` pages), sorted.
    pub async fn tags(
        &self,
        r: &RemoteRef,
        insecure: bool,
        creds: Option<&(String, String)>,
    ) -> Result<Vec<String>, ImportError> {
        let base = r.base(insecure);
        let mut token = None;
        let mut url = format!("{base}/v2/{}/tags/list", r.repository);
        let mut tags = Vec::new();
        for _ in 0..100 {
            let resp = self.get(&url, None, creds, &mut token).await?;
            let next = resp
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(|u| {
                    u.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            let body: Value = resp.json().await.map_err(net)?;
            tags.extend(
                body["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string)),
            );
            match next {
                Some(n) if n.starts_with('/') => url = format!("{base}{n}"),
                Some(n) if n.starts_with("http") => url = n,
                _ => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Streams the blob `digest` of `r`'s repository into `into`, at most
    /// `max` bytes, and checks its digest. Returns its size.
    pub async fn blob_to_file(
        &self,
        r: &RemoteRef,
        insecure: bool,
        creds: Option<&(String, String)>,
        digest: &Digest,
        into: &std::path::Path,
        max: u64,
    ) -> Result<u64, ImportError> {
        use tokio::io::AsyncWriteExt;
        let url = format!("{}/v2/{}/blobs/{digest}", r.base(insecure), r.repository);
        let mut resp = self.get(&url, None, creds, &mut None).await?;
        let mut file = tokio::fs::File::create(into)
            .await
            .map_err(|e| ImportError::Network(format!("{}: {e}", into.display())))?;
        let mut hasher = podspace_oci::digest::ResumableSha256::new();
        while let Some(chunk) = resp.chunk().await.map_err(net)? {
            hasher.update(&chunk);
            if hasher.bytes_hashed() > max {
                return Err(ImportError::Manifest(format!(
                    "blob {digest} is larger than {max} bytes"
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| ImportError::Network(format!("{}: {e}", into.display())))?;
        }
        file.flush()
            .await
            .map_err(|e| ImportError::Network(format!("{}: {e}", into.display())))?;
        if &hasher.finish() != digest {
            return Err(ImportError::Manifest(format!(
                "blob {digest}: the registry sent other content"
            )));
        }
        Ok(hasher.bytes_hashed())
    }

    /// Reads the image `r` names (for a list or index: its linux/amd64 entry).
    pub async fn import(
        &self,
        r: &RemoteRef,
        insecure: bool,
        creds: Option<&(String, String)>,
    ) -> Result<Imported, ImportError> {
        let base = r.base(insecure);
        let mut token = None;
        let mut reference = r.reference.clone();
        for _ in 0..2 {
            let url = format!("{base}/v2/{}/manifests/{reference}", r.repository);
            let resp = self.get(&url, Some(ACCEPTED), creds, &mut token).await?;
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.bytes().await.map_err(net)?;
            let m = manifest::parse(content_type.as_deref(), &body)
                .map_err(|e| ImportError::Manifest(e.0))?;
            let digest = Digest::sha256_of(&body).to_string();
            if reference.starts_with("sha256:") && reference != digest {
                return Err(ImportError::Manifest(format!(
                    "asked for {reference}, the registry sent {digest}"
                )));
            }
            match &m.kind {
                Kind::Index { .. } => {
                    let v: Value = serde_json::from_slice(&body)
                        .map_err(|e| ImportError::Manifest(e.to_string()))?;
                    let pick = v["manifests"].as_array().into_iter().flatten().find(|d| {
                        d.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                            && d.pointer("/platform/architecture").and_then(Value::as_str)
                                == Some("amd64")
                    });
                    reference = pick
                        .and_then(|d| d["digest"].as_str())
                        .ok_or(ImportError::NoPlatform)?
                        .to_string();
                }
                Kind::Image { config, .. } => {
                    let curl = format!("{base}/v2/{}/blobs/{}", r.repository, config.digest);
                    let config_json = match self.get(&curl, None, creds, &mut token).await {
                        Ok(resp) => resp.json::<Value>().await.unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    };
                    return Ok(Imported {
                        reference: format!("{}/{}@{digest}", r.registry, r.repository),
                        digest,
                        media_type: m.media_type.clone(),
                        manifest_size: body.len(),
                        manifest: m,
                        config: config_json,
                    });
                }
            }
        }
        Err(ImportError::Manifest(
            "a manifest list that names another list".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = RemoteRef::parse("127.0.0.1:5000/team/app:1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "team/app", "1")
        );
        assert_eq!(RemoteRef::parse("quay.io/a/b").unwrap().reference, "latest");
        assert_eq!(
            RemoteRef::parse("quay.io/a/b@sha256:abc")
                .unwrap()
                .reference,
            "sha256:abc"
        );
        assert!(RemoteRef::parse("busybox").is_err());
        let hub = RemoteRef::parse_docker("busybox").unwrap();
        assert_eq!(hub.whole(), "docker.io/library/busybox:latest");
        assert_eq!(hub.base(false), "https://registry-1.docker.io");
        assert_eq!(
            RemoteRef::parse_docker("team/app@sha256:ab")
                .unwrap()
                .whole(),
            "docker.io/team/app@sha256:ab"
        );
        assert_eq!(
            RemoteRef::parse_docker("localhost/app:1").unwrap().whole(),
            "localhost/app:1"
        );
        assert!(RemoteRef::parse("team/app:1").is_err());
        assert_eq!(r.base(false), "http://127.0.0.1:5000");
        assert_eq!(
            RemoteRef::parse("quay.io/a/b").unwrap().base(false),
            "https://quay.io"
        );
    }
}
