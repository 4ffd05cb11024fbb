//! A thin HTTP client of the API. Server errors are Kubernetes Status
//! objects and become one-line errors the way `oc` prints them.

use anyhow::{anyhow, Result};
use podspace_api::Status;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    pub server: String,
    token: String,
}

/// An error the server answered with.
#[derive(Debug)]
pub struct ServerError(pub Status);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.code == 401 {
            return write!(f, "You must be logged in to the server (Unauthorized)");
        }
        write!(
            f,
            "Error from server ({:?}): {}",
            self.0.reason, self.0.message
        )
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    pub fn code(&self) -> u16 {
        self.0.code
    }
}

/// The status code of a server error inside an anyhow chain.
pub fn error_code(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<ServerError>().map(ServerError::code)
}

impl Client {
    pub fn new(server: &str, token: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("psc/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            server: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.server));
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        rb
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the server at {}: {}",
                self.server,
                root_cause(&e)
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status();
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<Status>(&text) {
            Ok(status) => Err(ServerError(status).into()),
            Err(_) => Err(anyhow!("the server answered {code}: {}", text.trim())),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .send(self.request(Method::GET, path))
            .await?
            .json()
            .await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        Ok(self
            .send(self.request(Method::POST, path).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        Ok(self
            .send(self.request(Method::PUT, path).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value> {
        let rb = self
            .request(Method::PATCH, path)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            )
            .body(serde_json::to_vec(patch)?);
        Ok(self.send(rb).await?.json().await?)
    }

    /// A POST whose body is streamed as it is produced (binary build input),
    /// so an upload is never held in memory whole.
    pub async fn post_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: reqwest::Body,
    ) -> Result<Value> {
        let rb = self
            .request(Method::POST, path)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        Ok(self.send(rb).await?.json().await?)
    }

    /// A GET whose body the caller reads as it arrives (build logs).
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        self.send(self.request(Method::GET, path).query(query))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        Ok(self
            .send(self.request(Method::DELETE, path))
            .await?
            .json()
            .await?)
    }

    /// A raw form POST (OAuth endpoints answer in their own format).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, Value)> {
        let resp = self
            .request(Method::POST, path)
            .form(form)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach the server at {}: {}",
                    self.server,
                    root_cause(&e)
                )
            })?;
        let code = resp.status();
        let value = resp.json().await.unwrap_or(Value::Null);
        Ok((code, value))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
