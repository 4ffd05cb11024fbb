//! A verified delivery decided: the BuildRequest that builds exactly the
//! pushed commit of the configured branch, or why nothing is built.
//! Branches compare as OpenShift compares them: `refs/heads/` is stripped
//! from both sides, nothing else; a config without a ref means `master`.

use serde::{Deserialize, Serialize};

use crate::payload::generic::DockerStrategyOptions;
use crate::payload::{EnvVar, Event, Revision};
use crate::trigger::WebHook;
use crate::Provider;

/// The secret, wherever a build records its cause.
pub const SECRET_PLACEHOLDER: &str = "<secret>";

#[derive(Debug, Default, Deserialize)]
struct Spec {
    #[serde(default)]
    source: Source,
}

#[derive(Debug, Default, Deserialize)]
struct Source {
    #[serde(default)]
    git: Option<Git>,
}

#[derive(Debug, Default, Deserialize)]
struct Git {
    #[serde(rename = "ref", default)]
    git_ref: String,
}

fn short(r: &str) -> &str {
    r.strip_prefix("refs/heads/").unwrap_or(r)
}

/// Whether a pushed ref is the config's branch.
pub fn branch_matches(config_ref: &str, event_ref: &str) -> bool {
    let config_ref = if config_ref.is_empty() {
        "master"
    } else {
        config_ref
    };
    !event_ref.is_empty() && short(event_ref) == short(config_ref)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitRevision {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub git: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub message: &'static str,
    #[serde(flatten)]
    pub hook: std::collections::BTreeMap<&'static str, HookCause>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookCause {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<GitRevision>,
    pub secret: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRequest {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: Metadata,
    pub triggered_by: Vec<Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<GitRevision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_strategy_options: Option<DockerStrategyOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Build {
        request: Box<BuildRequest>,
        /// What the delivery asked for that was ignored.
        warnings: Vec<String>,
    },
    /// Answered 200, nothing built, and why.
    Skip(String),
}

fn build(
    provider: Provider,
    config: &str,
    revision: Option<Revision>,
    env: Vec<EnvVar>,
    docker_strategy_options: Option<DockerStrategyOptions>,
    warnings: Vec<String>,
) -> Decision {
    let (field, message) = provider.cause();
    let revision = revision.map(|git| GitRevision { kind: "Git", git });
    let cause = Cause {
        message,
        hook: [(
            field,
            HookCause {
                revision: revision.clone(),
                secret: SECRET_PLACEHOLDER,
            },
        )]
        .into(),
    };
    Decision::Build {
        request: Box::new(BuildRequest {
            kind: "BuildRequest",
            api_version: "build.openshift.io/v1",
            metadata: Metadata {
                name: config.to_string(),
            },
            triggered_by: vec![cause],
            revision,
            env,
            docker_strategy_options,
        }),
        warnings,
    }
}

fn mismatch(event_ref: &str) -> Decision {
    Decision::Skip(format!(
        "skipping build. Branch reference from {event_ref:?} does not match configuration"
    ))
}

/// What a verified delivery of `provider` to the config `name` (whose spec
/// is `spec`, reached through trigger `hook`) leads to.
pub fn decide(
    provider: Provider,
    name: &str,
    spec: &serde_json::Value,
    hook: &WebHook,
    event: Event,
) -> Decision {
    let spec = Spec::deserialize(spec).unwrap_or_default();
    let config_ref = spec.source.git.as_ref().map(|g| g.git_ref.as_str());
    match event {
        Event::Ping => {
            Decision::Skip("ping received: the webhook is set up; nothing to build".into())
        }
        Event::Deleted { git_ref } => Decision::Skip(format!(
            "skipping build. The push deleted {git_ref:?}: there is nothing to build"
        )),
        Event::Push(push) => {
            if !branch_matches(config_ref.unwrap_or_default(), &push.git_ref) {
                return mismatch(&push.git_ref);
            }
            build(provider, name, push.revision, Vec::new(), None, Vec::new())
        }
        Event::Generic(generic) => {
            let mut warnings = generic.warnings;
            let env = if hook.allow_env {
                generic.env
            } else {
                if !generic.env.is_empty() {
                    warnings.push(
                        "the payload's env is ignored: the trigger does not set allowEnv".into(),
                    );
                }
                Vec::new()
            };
            let revision = match (config_ref, generic.git) {
                // A config without a git source: the git part is ignored.
                (None, _) | (Some(_), None) => None,
                (Some(config_ref), Some(git)) if !git.refs.is_empty() => {
                    match git
                        .refs
                        .iter()
                        .find(|r| branch_matches(config_ref, &r.git_ref))
                    {
                        Some(r) => r.revision(),
                        None => {
                            return Decision::Skip(format!(
                                "skipping build. None of the supplied refs matched {config_ref:?}"
                            ))
                        }
                    }
                }
                (Some(config_ref), Some(git)) => {
                    if !branch_matches(config_ref, &git.head.git_ref) {
                        return mismatch(&git.head.git_ref);
                    }
                    git.head.revision()
                }
            };
            build(
                provider,
                name,
                revision,
                env,
                generic.docker_strategy_options,
                warnings,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{GenericRequest, Push};
    use serde_json::json;

    #[test]
    fn branches() {
        assert!(branch_matches("", "refs/heads/master"));
        assert!(
            !branch_matches("", "refs/heads/main"),
            "an empty ref means master"
        );
        assert!(branch_matches("main", "refs/heads/main"));
        assert!(branch_matches("refs/heads/main", "main"));
        assert!(
            !branch_matches("v1", "refs/tags/v1"),
            "only refs/heads/ is stripped"
        );
        assert!(branch_matches("refs/tags/v1", "refs/tags/v1"));
        assert!(!branch_matches("main", ""));
    }

    fn spec(r: &str) -> serde_json::Value {
        json!({"source": {"git": {"uri": "https://example.com/r.git", "ref": r}}})
    }

    #[test]
    fn a_push_pins_its_commit_and_records_the_cause() {
        let push = Event::Push(Push {
            git_ref: "refs/heads/main".into(),
            revision: Some(Revision {
                commit: "abc".into(),
                message: "m".into(),
                ..Default::default()
            }),
        });
        let Decision::Build { request, warnings } = decide(
            Provider::GitHub,
            "shop",
            &spec("main"),
            &WebHook::default(),
            push,
        ) else {
            panic!("a build")
        };
        assert!(warnings.is_empty());
        let v = serde_json::to_value(&request).unwrap();
        assert_eq!(v["kind"], "BuildRequest");
        assert_eq!(
            v["revision"],
            json!({"type": "Git", "git": {"commit": "abc", "message": "m"}})
        );
        assert_eq!(v["triggeredBy"][0]["message"], "GitHub WebHook");
        assert_eq!(v["triggeredBy"][0]["githubWebHook"]["secret"], "<secret>");
        assert_eq!(
            v["triggeredBy"][0]["githubWebHook"]["revision"]["git"]["commit"],
            "abc"
        );
        let other = Event::Push(Push {
            git_ref: "refs/heads/dev".into(),
            revision: None,
        });
        assert!(matches!(
            decide(Provider::GitHub, "shop", &spec("main"), &WebHook::default(), other),
            Decision::Skip(m) if m.contains("\"refs/heads/dev\" does not match")
        ));
    }

    #[test]
    fn generic_refs_env_and_configs_without_git() {
        let payload: GenericRequest = crate::payload::generic::parse(
            &crate::payload::fixtures::headers(&[("content-type", "application/json")]),
            &crate::payload::fixtures::load("generic.json"),
        );
        let allow = WebHook {
            allow_env: true,
            ..Default::default()
        };
        let Decision::Build { request, .. } = decide(
            Provider::Generic,
            "shop",
            &spec("release"),
            &allow,
            Event::Generic(payload.clone()),
        ) else {
            panic!("a build")
        };
        assert_eq!(request.env.len(), 1);
        assert_eq!(
            request.revision.as_ref().unwrap().git.commit,
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        let Decision::Build { request, warnings } = decide(
            Provider::Generic,
            "shop",
            &spec("release"),
            &WebHook::default(),
            Event::Generic(payload.clone()),
        ) else {
            panic!("a build")
        };
        assert!(request.env.is_empty() && warnings[0].contains("allowEnv"));
        assert!(matches!(
            decide(Provider::Generic, "shop", &spec("main"), &allow, Event::Generic(payload.clone())),
            Decision::Skip(m) if m.contains("None of the supplied refs matched \"main\"")
        ));
        let Decision::Build { request, .. } = decide(
            Provider::Generic,
            "shop",
            &json!({"source": {}}),
            &allow,
            Event::Generic(payload),
        ) else {
            panic!("a build")
        };
        assert!(
            request.revision.is_none(),
            "no git source: the git part is ignored"
        );
        let empty = GenericRequest::default();
        assert!(matches!(
            decide(
                Provider::Generic,
                "shop",
                &spec("main"),
                &allow,
                Event::Generic(empty)
            ),
            Decision::Build { .. }
        ));
    }
}
