//! Cloning a BuildConfig's repository on the user's machine (builder
//! detection, `start-build --as-dockerfile`): shallow at a branch or tag,
//! or whole when a commit is asked for.

use std::path::Path;

use anyhow::{Context, Result};

/// Clones `uri` into `into` at `git_ref` (the default branch when `None`),
/// then checks out `commit` if given. Returns the commit checked out.
pub fn clone(
    uri: &str,
    git_ref: Option<&str>,
    commit: Option<&str>,
    into: &Path,
) -> Result<String> {
    let mut fetch = git2::FetchOptions::new();
    if commit.is_none() {
        fetch.depth(1);
    }
    let mut builder = git2::build::RepoBuilder::new();
    builder.fetch_options(fetch);
    if let Some(r) = git_ref.filter(|r| !r.is_empty()) {
        builder.branch(r);
    }
    let repo = builder
        .clone(uri, into)
        .with_context(|| format!("cloning {uri}"))?;
    if let Some(c) = commit {
        let object = repo
            .revparse_single(c)
            .with_context(|| format!("no commit {c:?} in {uri}"))?;
        repo.checkout_tree(&object, Some(git2::build::CheckoutBuilder::new().force()))
            .with_context(|| format!("checking out {c}"))?;
        repo.set_head_detached(object.id())?;
    }
    let head = repo.head()?.peel_to_commit()?;
    Ok(head.id().to_string())
}
