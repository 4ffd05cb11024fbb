//! GitHub (and Gitea, Gogs) `push` and `ping` events.

use http::HeaderMap;
use serde::Deserialize;

use super::{header, is_zero_sha, json, require_json, Event, Person, Push, Revision};
use crate::HookError;

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    head_commit: Option<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<Person>,
    #[serde(default)]
    committer: Option<Person>,
}

pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let event = header(headers, "x-github-event")
        .or_else(|| header(headers, "x-gitea-event"))
        .or_else(|| header(headers, "x-gogs-event"))
        .ok_or_else(|| HookError::BadRequest("missing X-GitHub-Event or X-Gogs-Event".into()))?;
    match event {
        "ping" => return Ok(Event::Ping),
        "push" => {}
        other => {
            return Err(HookError::BadRequest(format!(
                "Unknown X-GitHub-Event or X-Gogs-Event {other}"
            )))
        }
    }
    require_json(headers)?;
    let push: PushEvent = json(body)?;
    if push.deleted || is_zero_sha(&push.after) {
        return Ok(Event::Deleted {
            git_ref: push.git_ref,
        });
    }
    let revision = match push.head_commit {
        Some(c) => Some(Revision {
            commit: c.id,
            author: c.author,
            committer: c.committer,
            message: c.message,
        }),
        None if !push.after.is_empty() => Some(Revision {
            commit: push.after,
            ..Default::default()
        }),
        None => None,
    };
    Ok(Event::Push(Push {
        git_ref: push.git_ref,
        revision,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, load};
    use super::*;

    fn github(event: &str) -> HeaderMap {
        headers(&[
            ("x-github-event", event),
            ("content-type", "application/json"),
        ])
    }

    #[test]
    fn push_ping_delete_and_tags() {
        let Event::Push(push) = parse(&github("push"), &load("github-push.json")).unwrap() else {
            panic!("a push")
        };
        assert_eq!(push.git_ref, "refs/heads/main");
        let rev = push.revision.unwrap();
        assert_eq!(rev.commit, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(rev.message, "Update README.md");
        assert_eq!(rev.author.unwrap().email, "octocat@github.com");
        assert_eq!(
            parse(&github("ping"), b"{\"zen\":\"x\"}").unwrap(),
            Event::Ping
        );
        assert_eq!(
            parse(&github("push"), &load("github-delete.json")).unwrap(),
            Event::Deleted {
                git_ref: "refs/heads/feature".into()
            }
        );
        let Event::Push(tag) = parse(&github("push"), &load("github-tag.json")).unwrap() else {
            panic!("a push")
        };
        assert_eq!(tag.git_ref, "refs/tags/v1.0");
    }

    #[test]
    fn refusals() {
        let err = parse(&headers(&[]), b"{}").unwrap_err();
        assert_eq!(err.to_string(), "missing X-GitHub-Event or X-Gogs-Event");
        let err = parse(&github("issues"), b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown X-GitHub-Event or X-Gogs-Event issues"
        );
        let form = headers(&[
            ("x-github-event", "push"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(parse(&form, b"payload=%7B%7D")
            .unwrap_err()
            .to_string()
            .contains("application/json"));
        let err = parse(&github("push"), b"{\"secret-ish\": [")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-ish"), "never echo the body: {err}");
        assert!(
            parse(&github("push"), b"{}").is_err(),
            "a push names its ref"
        );
        let gogs = headers(&[
            ("x-gogs-event", "push"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(matches!(
            parse(&gogs, &load("github-push.json")),
            Ok(Event::Push(_))
        ));
    }
}
