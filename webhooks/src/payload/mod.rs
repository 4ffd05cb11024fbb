//! A delivery's headers and body read into what happened: a push of a ref
//! (with the commit to build), a branch deletion, a ping, or a Generic
//! request. Each provider's payload is a typed struct of the fields used;
//! everything else in it is ignored. Errors never echo the body.

mod bitbucket;
pub mod generic;
mod github;
mod gitlab;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub use generic::{EnvVar, GenericRequest};

use crate::{HookError, Provider};

/// Someone named in a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

impl Person {
    /// `Name <email>` (Bitbucket's `raw`), or a bare name.
    pub fn from_raw(raw: &str) -> Person {
        match raw.rsplit_once('<') {
            Some((name, rest)) => Person {
                name: name.trim().to_string(),
                email: rest.trim_end_matches('>').trim().to_string(),
            },
            None => Person {
                name: raw.trim().to_string(),
                email: String::new(),
            },
        }
    }
}

/// The commit a delivery names: `build.spec.revision.git`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<Person>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A pushed ref and, when the payload names it, the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// As the provider names it: `refs/heads/main`, `main`, `refs/tags/v1`.
    pub git_ref: String,
    pub revision: Option<Revision>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The provider checking the hook: answered, nothing built.
    Ping,
    Push(Push),
    /// The ref was deleted: there is nothing to build.
    Deleted {
        git_ref: String,
    },
    Generic(GenericRequest),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The body's media type, lower case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// Providers other than Generic send JSON, and only JSON is read.
fn require_json(headers: &HeaderMap) -> Result<(), HookError> {
    match media_type(headers).as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(HookError::BadRequest(format!(
            "the payload must be application/json, not {other:?} (set the hook's content type to JSON)"
        ))),
        None => Err(HookError::BadRequest(
            "the payload must be application/json: the request has no Content-Type".into(),
        )),
    }
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, HookError> {
    serde_json::from_slice(body).map_err(|e| {
        // The error's line and column, never the body itself.
        HookError::BadRequest(format!("the payload is not a valid event: {e}"))
    })
}

/// An all-zero SHA: the "after" of a deleted ref.
fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Reads one delivery.
pub fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    match provider {
        Provider::GitHub => github::parse(headers, body),
        Provider::GitLab => gitlab::parse(headers, body),
        Provider::Bitbucket => bitbucket::parse(headers, body),
        Provider::Generic => Ok(Event::Generic(generic::parse(headers, body))),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use http::HeaderMap;

    /// A fixture of `tests/fixtures/`.
    pub fn load(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }
}
