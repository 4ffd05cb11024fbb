//! `psc start-build --from-webhook=URL [--git-post-receive=FILE]`: posts a
//! Generic webhook delivery instead of calling the API as the logged-in
//! user — what a git server's `post-receive` hook runs. Each `old new ref`
//! line of the hook's input becomes one of `git.refs[]`, with the commit's
//! author, committer and message read from the local repository when it
//! has the commit.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use podspace_webhooks::payload::generic::{EnvVar, GitInfo, GitRef, Payload};
use podspace_webhooks::payload::Person;
use serde_json::Value;

fn person(sig: &git2::Signature<'_>) -> Person {
    Person {
        name: sig.name().unwrap_or_default().to_string(),
        email: sig.email().unwrap_or_default().to_string(),
    }
}

/// The refs a post-receive hook was given (`old new ref` per line).
fn refs(input: &str, repo: Option<&git2::Repository>) -> Result<Vec<GitRef>> {
    let mut out = Vec::new();
    for line in input.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, new, git_ref] = fields[..] else {
            bail!("not a post-receive line (old new ref): {line:?}");
        };
        if !matches!(new.len(), 40 | 64) || !new.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("not a commit id (40 or 64 hex digits) in post-receive line {line:?}");
        }
        if new.bytes().all(|b| b == b'0') {
            continue; // a deleted ref: nothing to build
        }
        let mut r = GitRef {
            git_ref: git_ref.to_string(),
            commit: new.to_string(),
            ..Default::default()
        };
        let commit = repo.and_then(|repo| {
            git2::Oid::from_str(new)
                .ok()
                .and_then(|oid| repo.find_commit(oid).ok())
        });
        if let Some(c) = commit {
            r.author = Some(person(&c.author()));
            r.committer = Some(person(&c.committer()));
            r.message = c.message().unwrap_or_default().trim_end().to_string();
        }
        out.push(r);
    }
    Ok(out)
}

fn read_input(file: &Path) -> Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

pub async fn post(
    url: &str,
    post_receive: Option<&PathBuf>,
    repository: Option<&PathBuf>,
    env: &[(String, String)],
) -> Result<()> {
    let mut payload = Payload {
        env: env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    };
    if let Some(file) = post_receive {
        let input = read_input(file)?;
        let dir = repository.cloned().unwrap_or_else(|| PathBuf::from("."));
        let repo = git2::Repository::open(&dir).ok();
        let refs = refs(&input, repo.as_ref())?;
        if refs.is_empty() {
            println!("no pushed refs to build");
            return Ok(());
        }
        payload.git = Some(GitInfo {
            refs,
            ..Default::default()
        });
    }
    let resp = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&payload)?)
        .send()
        .await
        .map_err(|e| anyhow!("posting to the webhook: {e}"))?;
    let code = resp.status();
    for w in resp.headers().get_all(reqwest::header::WARNING) {
        eprintln!("Warning: {}", w.to_str().unwrap_or_default());
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let message = body["message"].as_str().unwrap_or_default();
    match (code.is_success(), body["kind"].as_str()) {
        (true, Some("Build")) => {
            println!(
                "build.build.openshift.io/{} started",
                body["metadata"]["name"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        (true, _) => {
            println!("{message}");
            Ok(())
        }
        (false, _) => bail!("the webhook answered {code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_receive_lines() {
        let input = "0000000000000000000000000000000000000000 4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/heads/main\n\
                     4b825dc642cb6eb9a060e54bf8d69288fbee4904 0000000000000000000000000000000000000000 refs/heads/gone\n";
        let r = refs(input, None).unwrap();
        assert_eq!(r.len(), 1, "a deleted ref is left out");
        assert_eq!(r[0].git_ref, "refs/heads/main");
        assert_eq!(r[0].commit, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
        assert!(refs("two fields", None).is_err());
        assert!(
            refs("old new refs/heads/main", None).is_err(),
            "not a commit id"
        );
    }
}
