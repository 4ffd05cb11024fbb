//! The Generic payload (JSON or YAML): `git` (uri, ref, commit, author,
//! committer, message, `refs[]` post-receive style), `env`, and
//! `dockerStrategyOptions`. What cannot be read is a warning, not a
//! refusal, as OpenShift does: the build still runs, unpinned.

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{media_type, Person, Revision};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRef {
    #[serde(rename = "ref", default, skip_serializing_if = "String::is_empty")]
    pub git_ref: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<Person>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl GitRef {
    pub fn revision(&self) -> Option<Revision> {
        (!self.commit.is_empty()).then(|| Revision {
            commit: self.commit.clone(),
            author: self.author.clone(),
            committer: self.committer.clone(),
            message: self.message.clone(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    #[serde(flatten)]
    pub head: GitRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<GitRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerStrategyOptions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_args: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
}

/// The Generic payload as sent (`psc start-build --from-webhook` writes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_strategy_options: Option<DockerStrategyOptions>,
}

/// A Generic delivery: what it asks for, and what was ignored (warnings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenericRequest {
    pub git: Option<GitInfo>,
    pub env: Vec<EnvVar>,
    pub docker_strategy_options: Option<DockerStrategyOptions>,
    pub warnings: Vec<String>,
}

pub fn parse(headers: &HeaderMap, body: &[u8]) -> GenericRequest {
    let mut out = GenericRequest::default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return out;
    }
    let parsed: Result<Payload, String> = match media_type(headers).as_deref() {
        Some("application/json") => serde_json::from_slice(body).map_err(|e| e.to_string()),
        Some("application/yaml" | "application/x-yaml" | "text/yaml") => {
            serde_yaml::from_slice(body).map_err(|e| e.to_string())
        }
        _ => {
            out.warnings.push(
                "invalid Content-Type on payload (use application/json or application/yaml), ignoring payload and continuing with build".into(),
            );
            return out;
        }
    };
    match parsed {
        Ok(p) => {
            if p.git.is_none() {
                out.warnings.push(
                    "no git information found in payload, ignoring and continuing with build"
                        .into(),
                );
            }
            out.git = p.git;
            out.env = p.env;
            out.docker_strategy_options = p.docker_strategy_options;
        }
        Err(e) => out.warnings.push(format!(
            "error unmarshalling payload: {e}; ignoring it and continuing with build"
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, load};
    use super::*;

    #[test]
    fn json_yaml_and_what_is_ignored() {
        let json = parse(
            &headers(&[("content-type", "application/json")]),
            &load("generic.json"),
        );
        assert!(json.warnings.is_empty(), "{:?}", json.warnings);
        let git = json.git.clone().unwrap();
        assert_eq!(git.head.git_ref, "release");
        assert_eq!(git.head.commit, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
        assert_eq!(git.refs.len(), 1);
        assert_eq!(
            json.env,
            vec![EnvVar {
                name: "FEATURE_FLAGS".into(),
                value: "cart-v2".into()
            }]
        );
        assert_eq!(
            json.docker_strategy_options.clone().unwrap().no_cache,
            Some(true)
        );
        let yaml = parse(
            &headers(&[("content-type", "application/yaml")]),
            &load("generic.yaml"),
        );
        assert_eq!(yaml, json, "the same request in YAML");

        assert_eq!(
            parse(&headers(&[]), b""),
            GenericRequest::default(),
            "an empty body: a plain build"
        );
        let other = parse(&headers(&[("content-type", "text/plain")]), b"hello");
        assert!(other.git.is_none() && other.warnings[0].contains("invalid Content-Type"));
        let broken = parse(
            &headers(&[("content-type", "application/json")]),
            b"{\"git\": 5}",
        );
        assert!(broken.warnings[0].starts_with("error unmarshalling payload"));
        let no_git = parse(
            &headers(&[("content-type", "application/json")]),
            b"{\"env\": []}",
        );
        assert!(no_git.warnings[0].starts_with("no git information"));
    }
}
