//! The node's side of the node protocol (see `protocol.rs`): plain HTTPS/
//! HTTP calls to the API with the node's bearer token.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use podspace_builder::protocol::{
    BuildReport, Heartbeat, HeartbeatReply, LeaseGrant, LeaseRequest, PREFIX,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the API refused {what}: {status} {message}")]
    Refused {
        what: String,
        status: StatusCode,
        message: String,
    },
    #[error("writing the build input: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The API answered and will answer the same again (the build is gone,
    /// or its lease): retrying is pointless.
    pub fn is_final(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if status.is_client_error())
    }
}

#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
    token: String,
    node: String,
}

impl NodeClient {
    pub fn new(api: &str, token: &str, node: &str) -> Result<NodeClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Http {
                url: api.into(),
                source: e,
            })?;
        Ok(NodeClient {
            http,
            base: format!("{}{PREFIX}/{node}", api.trim_end_matches('/')),
            token: token.into(),
            node: node.into(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Http {
                url: self.base.clone(),
                source: e,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        Err(ClientError::Refused {
            what: what.into(),
            status,
            message: body
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// A build to run, or None when none came within `wait`.
    pub async fn lease(&self, wait: Duration) -> Result<Option<LeaseGrant>, ClientError> {
        let req = self
            .http
            .post(self.url("lease"))
            .timeout(wait + Duration::from_secs(30))
            .json(&LeaseRequest {
                wait_seconds: wait.as_secs(),
            });
        let resp = self.send("the lease", req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let grant = resp.json().await.map_err(|e| ClientError::Http {
            url: self.base.clone(),
            source: e,
        })?;
        Ok(Some(grant))
    }

    pub async fn heartbeat(&self, builds: Vec<String>) -> Result<HeartbeatReply, ClientError> {
        let req = self
            .http
            .post(self.url("heartbeat"))
            .timeout(Duration::from_secs(10))
            .json(&Heartbeat { builds });
        let resp = self.send("the heartbeat", req).await?;
        resp.json().await.map_err(|e| ClientError::Http {
            url: self.base.clone(),
            source: e,
        })
    }

    pub async fn append_log(
        &self,
        ns: &str,
        name: &str,
        pos: i64,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let req = self
            .http
            .post(self.url(&format!("builds/{ns}/{name}/log?pos={pos}")))
            .timeout(Duration::from_secs(30))
            .body(data.to_vec());
        self.send("the log", req).await.map(drop)
    }

    pub async fn report(
        &self,
        ns: &str,
        name: &str,
        report: &BuildReport,
    ) -> Result<(), ClientError> {
        let req = self
            .http
            .put(self.url(&format!("builds/{ns}/{name}/details")))
            .timeout(Duration::from_secs(30))
            .json(report);
        self.send("the build report", req).await.map(drop)
    }

    /// Downloads the build's binary input to `dest`.
    pub async fn fetch_input(&self, ns: &str, name: &str, dest: &Path) -> Result<u64, ClientError> {
        let req = self
            .http
            .get(self.url(&format!("builds/{ns}/{name}/input")));
        let resp = self.send("the build input", req).await?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(dest)
            .await?;
        let mut body = resp.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::Http {
                url: self.base.clone(),
                source: e,
            })?;
            total += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(total)
    }
}
