//! A BuildConfig's webhook triggers, typed: `type: GitHub` with
//! `github: {secret | secretReference, signatureSecretRef}` (and GitLab,
//! Bitbucket, Generic with `allowEnv`). Several triggers of one type are
//! several valid secrets. The URL secret is compared in constant time with
//! every candidate, without stopping at the first match.

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The key of a Secret that holds a trigger's URL secret.
pub const SECRET_KEY: &str = "WebHookSecretKey";
/// The key of a Secret that holds a trigger's signing secret, unless the
/// reference names another.
pub const SIGNATURE_KEY: &str = "WebHookSignatureKey";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Bitbucket,
    Generic,
}

impl Provider {
    /// The `{type}` segment of a webhook URL.
    pub fn from_path(segment: &str) -> Option<Provider> {
        Some(match segment {
            "github" => Provider::GitHub,
            "gitlab" => Provider::GitLab,
            "bitbucket" => Provider::Bitbucket,
            "generic" => Provider::Generic,
            _ => return None,
        })
    }

    pub fn path(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Generic => "generic",
        }
    }

    /// The trigger `type`.
    pub fn trigger_type(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
            Provider::Bitbucket => "Bitbucket",
            Provider::Generic => "Generic",
        }
    }

    /// The build cause's field (`githubWebHook` …) and message.
    pub fn cause(self) -> (&'static str, &'static str) {
        match self {
            Provider::GitHub => ("githubWebHook", "GitHub WebHook"),
            Provider::GitLab => ("gitlabWebHook", "GitLab WebHook"),
            Provider::Bitbucket => ("bitbucketWebHook", "Bitbucket WebHook"),
            Provider::Generic => ("genericWebHook", "Generic WebHook"),
        }
    }

    /// The header naming one delivery, which a replay repeats.
    pub fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &["x-github-delivery", "x-gitea-delivery", "x-gogs-delivery"],
            Provider::GitLab => &["x-gitlab-event-uuid"],
            Provider::Bitbucket => &["x-request-uuid", "x-request-id"],
            Provider::Generic => &["x-request-uuid", "x-request-id", "x-delivery-id"],
        }
    }

    pub const ALL: [Provider; 4] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Generic,
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[serde(default)]
    pub name: String,
    /// The Secret's key (for a signing secret; the URL secret is always
    /// `WebHookSecretKey`).
    #[serde(default)]
    pub key: Option<String>,
}

/// One webhook trigger's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebHook {
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_reference: Option<SecretRef>,
    /// Generic only: the payload's `env` is applied.
    #[serde(default)]
    pub allow_env: bool,
    /// Beyond OpenShift: the provider's own signature is required, made
    /// with the secret this names.
    #[serde(default)]
    pub signature_secret_ref: Option<SecretRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerPolicy {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    github: Option<WebHook>,
    #[serde(default)]
    gitlab: Option<WebHook>,
    #[serde(default)]
    bitbucket: Option<WebHook>,
    #[serde(default)]
    generic: Option<WebHook>,
}

#[derive(Debug, Default, Deserialize)]
struct Spec {
    #[serde(default)]
    triggers: Vec<TriggerPolicy>,
}

/// The triggers of `provider` in a BuildConfig's `spec` (in order).
pub fn webhooks(spec: &serde_json::Value, provider: Provider) -> Vec<WebHook> {
    let spec: Spec = Spec::deserialize(spec).unwrap_or_default();
    spec.triggers
        .into_iter()
        .filter(|t| t.kind.eq_ignore_ascii_case(provider.trigger_type()))
        .filter_map(|t| match provider {
            Provider::GitHub => t.github,
            Provider::GitLab => t.gitlab,
            Provider::Bitbucket => t.bitbucket,
            Provider::Generic => t.generic,
        })
        .collect()
}

/// The index of the trigger whose secret is `given`: `secret_of(i)` is the
/// i-th trigger's secret (inline, or read from its Secret; `None` when it
/// has none). Every candidate is compared, in constant time each.
pub fn matching(given: &str, secrets: &[Option<Vec<u8>>]) -> Option<usize> {
    let mut found = None;
    for (i, secret) in secrets.iter().enumerate() {
        let Some(secret) = secret.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let equal: bool = secret.ct_eq(given.as_bytes()).into();
        if equal && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_of_a_type() {
        let spec = json!({"triggers": [
            {"type": "GitHub", "github": {"secret": "a"}},
            {"type": "ImageChange", "imageChange": {}},
            {"type": "GitHub", "github": {"secretReference": {"name": "s"},
                                          "signatureSecretRef": {"name": "sig"}}},
            {"type": "Generic", "generic": {"secret": "g", "allowEnv": true}},
        ]});
        let gh = webhooks(&spec, Provider::GitHub);
        assert_eq!(gh.len(), 2);
        assert_eq!(gh[0].secret.as_deref(), Some("a"));
        assert_eq!(
            gh[1].secret_reference.as_ref().map(|r| r.name.as_str()),
            Some("s")
        );
        assert!(gh[1].signature_secret_ref.is_some());
        let generic = webhooks(&spec, Provider::Generic);
        assert!(generic[0].allow_env);
        assert!(webhooks(&spec, Provider::GitLab).is_empty());
        assert!(webhooks(&json!({"triggers": "nonsense"}), Provider::GitHub).is_empty());
    }

    #[test]
    fn secrets_match_any_candidate() {
        let secrets = vec![
            None,
            Some(b"".to_vec()),
            Some(b"abc".to_vec()),
            Some(b"xyz".to_vec()),
        ];
        assert_eq!(matching("xyz", &secrets), Some(3));
        assert_eq!(matching("abc", &secrets), Some(2));
        assert_eq!(
            matching("", &secrets),
            None,
            "an empty secret never matches"
        );
        assert_eq!(matching("ab", &secrets), None);
        assert_eq!(matching("abcd", &secrets), None);
    }
}
