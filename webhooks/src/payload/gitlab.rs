//! GitLab `Push Hook` and `Tag Push Hook` events. The commit built is
//! `checkout_sha`, else `after` — never "the last of `commits[]`", whose
//! order GitLab does not promise — with its details from the entry of
//! `commits[]` that has its id; an empty `commits[]` is fine.

use http::HeaderMap;
use serde::Deserialize;

use super::{header, is_zero_sha, json, require_json, Event, Person, Push, Revision};
use crate::HookError;

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    checkout_sha: Option<String>,
    #[serde(default)]
    after: String,
    #[serde(default)]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<Person>,
}

pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let event = header(headers, "x-gitlab-event")
        .ok_or_else(|| HookError::BadRequest("missing X-Gitlab-Event".into()))?;
    if !matches!(event, "Push Hook" | "Tag Push Hook") {
        return Err(HookError::BadRequest(format!(
            "Unknown X-Gitlab-Event {event}"
        )));
    }
    require_json(headers)?;
    let push: PushEvent = json(body)?;
    let sha = push
        .checkout_sha
        .filter(|s| !s.is_empty() && !is_zero_sha(s))
        .or_else(|| Some(push.after.clone()).filter(|a| !a.is_empty() && !is_zero_sha(a)));
    let Some(sha) = sha else {
        return Ok(Event::Deleted {
            git_ref: push.git_ref,
        });
    };
    let details = push.commits.into_iter().find(|c| c.id == sha);
    let revision = match details {
        Some(c) => Revision {
            commit: c.id,
            committer: c.author.clone(),
            author: c.author,
            message: c.message,
        },
        None => Revision {
            commit: sha,
            ..Default::default()
        },
    };
    Ok(Event::Push(Push {
        git_ref: push.git_ref,
        revision: Some(revision),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, load};
    use super::*;

    fn gitlab(event: &str) -> HeaderMap {
        headers(&[
            ("x-gitlab-event", event),
            ("content-type", "application/json"),
        ])
    }

    #[test]
    fn push_uses_checkout_sha_not_the_last_commit() {
        let Event::Push(push) = parse(&gitlab("Push Hook"), &load("gitlab-push.json")).unwrap()
        else {
            panic!("a push")
        };
        assert_eq!(push.git_ref, "refs/heads/master");
        let rev = push.revision.unwrap();
        // commits[] lists the newest first here: the last entry is older.
        assert_eq!(rev.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(rev.message, "fixed readme");
        assert_eq!(rev.author.unwrap().name, "GitLab dev user");
    }

    #[test]
    fn empty_commits_deletions_and_refusals() {
        let body = br#"{"object_kind":"push","ref":"refs/heads/new","before":"0000000000000000000000000000000000000000",
            "after":"95790bf891e76fee5e1747ab589903a6a1f80f22","checkout_sha":"95790bf891e76fee5e1747ab589903a6a1f80f22","commits":[]}"#;
        let Event::Push(push) = parse(&gitlab("Push Hook"), body).unwrap() else {
            panic!("a push")
        };
        assert_eq!(
            push.revision.unwrap().commit,
            "95790bf891e76fee5e1747ab589903a6a1f80f22"
        );
        let deleted = br#"{"object_kind":"push","ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","checkout_sha":null,"commits":[]}"#;
        assert_eq!(
            parse(&gitlab("Push Hook"), deleted).unwrap(),
            Event::Deleted {
                git_ref: "refs/heads/old".into()
            }
        );
        assert_eq!(
            parse(&headers(&[]), b"{}").unwrap_err().to_string(),
            "missing X-Gitlab-Event"
        );
        assert_eq!(
            parse(&gitlab("Issue Hook"), b"{}").unwrap_err().to_string(),
            "Unknown X-Gitlab-Event Issue Hook"
        );
        let tag = br#"{"object_kind":"tag_push","ref":"refs/tags/v1.0.0","after":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7","checkout_sha":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7","commits":[]}"#;
        let Event::Push(push) = parse(&gitlab("Tag Push Hook"), tag).unwrap() else {
            panic!("a tag push")
        };
        assert_eq!(push.git_ref, "refs/tags/v1.0.0");
    }
}
