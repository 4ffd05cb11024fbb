//! Bitbucket Cloud `repo:push` and Bitbucket Server (Data Center)
//! `repo:refs_changed`. Cloud's branch is `new.name` (the first push of a
//! new branch has no `old`), its commit `new.target`; a change with no
//! `new` deletes the branch. Server's change names `ref.displayId` and
//! `toHash`; `type: DELETE` deletes it.

use http::HeaderMap;
use serde::Deserialize;

use super::{header, json, require_json, Event, Person, Push, Revision};
use crate::HookError;

#[derive(Deserialize)]
struct CloudPush {
    push: CloudChanges,
}

#[derive(Deserialize)]
struct CloudChanges {
    #[serde(default)]
    changes: Vec<CloudChange>,
}

#[derive(Deserialize)]
struct CloudChange {
    #[serde(default)]
    new: Option<CloudRef>,
    #[serde(default)]
    old: Option<CloudRef>,
}

#[derive(Deserialize)]
struct CloudRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    target: Option<CloudCommit>,
}

#[derive(Deserialize)]
struct CloudCommit {
    hash: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<CloudAuthor>,
}

#[derive(Deserialize)]
struct CloudAuthor {
    #[serde(default)]
    raw: String,
}

#[derive(Deserialize)]
struct ServerPush {
    #[serde(default)]
    changes: Vec<ServerChange>,
}

#[derive(Deserialize)]
struct ServerChange {
    #[serde(rename = "ref")]
    git_ref: ServerRef,
    #[serde(default, rename = "toHash")]
    to_hash: String,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct ServerRef {
    #[serde(default, rename = "displayId")]
    display_id: String,
    #[serde(default)]
    id: String,
}

fn no_change() -> HookError {
    HookError::BadRequest("the push names no changed ref".into())
}

pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let event = header(headers, "x-event-key")
        .ok_or_else(|| HookError::BadRequest("missing X-Event-Key".into()))?;
    match event {
        "diagnostics:ping" => Ok(Event::Ping),
        "repo:push" => {
            require_json(headers)?;
            let push: CloudPush = json(body)?;
            let change = push.push.changes.into_iter().next().ok_or_else(no_change)?;
            let Some(new) = change.new else {
                return Ok(Event::Deleted {
                    git_ref: change.old.map(|o| o.name).unwrap_or_default(),
                });
            };
            let name = if new.name.is_empty() {
                change.old.map(|o| o.name).unwrap_or_default()
            } else {
                new.name
            };
            let revision = new.target.map(|t| Revision {
                commit: t.hash,
                author: t.author.map(|a| Person::from_raw(&a.raw)),
                committer: None,
                message: t.message,
            });
            Ok(Event::Push(Push {
                git_ref: name,
                revision,
            }))
        }
        "repo:refs_changed" => {
            require_json(headers)?;
            let push: ServerPush = json(body)?;
            let change = push.changes.into_iter().next().ok_or_else(no_change)?;
            let git_ref = if change.git_ref.display_id.is_empty() {
                change.git_ref.id
            } else {
                change.git_ref.display_id
            };
            if change.kind.eq_ignore_ascii_case("DELETE") {
                return Ok(Event::Deleted { git_ref });
            }
            Ok(Event::Push(Push {
                git_ref,
                revision: (!change.to_hash.is_empty()).then(|| Revision {
                    commit: change.to_hash,
                    ..Default::default()
                }),
            }))
        }
        other => Err(HookError::BadRequest(format!(
            "Unknown Bitbucket X-Event-Key {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, load};
    use super::*;

    fn bitbucket(event: &str) -> HeaderMap {
        headers(&[("x-event-key", event), ("content-type", "application/json")])
    }

    #[test]
    fn cloud_push_and_new_branches() {
        let Event::Push(push) =
            parse(&bitbucket("repo:push"), &load("bitbucket-cloud-push.json")).unwrap()
        else {
            panic!("a push")
        };
        assert_eq!(push.git_ref, "main");
        let rev = push.revision.unwrap();
        assert_eq!(rev.commit, "709d658dc5b6d6afcd46049c2f332ee3f515a67d");
        assert_eq!(
            rev.author.unwrap(),
            Person {
                name: "Emma".into(),
                email: "emma@example.com".into()
            }
        );
        // A new branch: no `old`.
        let created = br#"{"push":{"changes":[{"new":{"type":"branch","name":"feature","target":{"hash":"abc123"}},"old":null,"created":true}]}}"#;
        let Event::Push(push) = parse(&bitbucket("repo:push"), created).unwrap() else {
            panic!("a push")
        };
        assert_eq!(
            (
                push.git_ref.as_str(),
                push.revision.unwrap().commit.as_str()
            ),
            ("feature", "abc123")
        );
        let deleted = br#"{"push":{"changes":[{"new":null,"old":{"type":"branch","name":"gone"},"closed":true}]}}"#;
        assert_eq!(
            parse(&bitbucket("repo:push"), deleted).unwrap(),
            Event::Deleted {
                git_ref: "gone".into()
            }
        );
        assert!(parse(&bitbucket("repo:push"), br#"{"push":{"changes":[]}}"#).is_err());
    }

    #[test]
    fn server_refs_changed() {
        let Event::Push(push) = parse(
            &bitbucket("repo:refs_changed"),
            &load("bitbucket-server-refs-changed.json"),
        )
        .unwrap() else {
            panic!("a push")
        };
        assert_eq!(push.git_ref, "master");
        assert_eq!(
            push.revision.unwrap().commit,
            "178864a7d521b6f5e720b386b2c2b0ef8563e0dc"
        );
        assert_eq!(
            parse(&bitbucket("diagnostics:ping"), b"").unwrap(),
            Event::Ping
        );
        assert_eq!(
            parse(&bitbucket("pullrequest:created"), b"{}")
                .unwrap_err()
                .to_string(),
            "Unknown Bitbucket X-Event-Key pullrequest:created"
        );
        assert_eq!(
            parse(&headers(&[]), b"{}").unwrap_err().to_string(),
            "missing X-Event-Key"
        );
    }
}
