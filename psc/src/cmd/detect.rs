//! `psc new-build`'s look at the source and the server before it writes a
//! BuildConfig, as `oc new-build` does: a local directory is built from its
//! `origin` remote; an unqualified builder image stream is found in the
//! current project, else in the shared project `openshift`; with no builder
//! named, the files at the source's root pick one (`requirements.txt` →
//! a stream tag whose `supports` annotation names python, …).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use podspace_s2i::detect::{self, Detected};

use super::newbuild::{NewBuildArgs, SourcePlan};
use crate::client::{error_code, Client};

/// The shared project of builder images.
pub const SHARED_PROJECT: &str = "openshift";

fn streams_path(ns: &str) -> String {
    format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams")
}

/// The project holding `stream`: `ns` if it has it, else the shared one.
async fn stream_project(client: &Client, ns: &str, stream: &str) -> Result<String> {
    for candidate in [ns, SHARED_PROJECT] {
        match client
            .get(&format!("{}/{stream}", streams_path(candidate)))
            .await
        {
            Ok(_) => return Ok(candidate.to_string()),
            Err(e) if matches!(error_code(&e), Some(404 | 403)) => continue,
            Err(e) => return Err(e),
        }
    }
    bail!("image stream {stream:?} not found in project {ns:?} or {SHARED_PROJECT:?}")
}

/// A stream tag in `ns` (then the shared project) whose `supports`
/// annotation names `language`; `latest` preferred.
async fn builder_for(
    client: &Client,
    ns: &str,
    language: &str,
) -> Result<Option<(String, String)>> {
    for candidate in [ns, SHARED_PROJECT] {
        let list = match client.get(&streams_path(candidate)).await {
            Ok(list) => list,
            Err(e) if matches!(error_code(&e), Some(404 | 403)) => continue,
            Err(e) => return Err(e),
        };
        let mut found: Option<(String, String)> = None;
        for stream in list["items"].as_array().into_iter().flatten() {
            let name = stream["metadata"]["name"].as_str().unwrap_or_default();
            for tag in stream["spec"]["tags"].as_array().into_iter().flatten() {
                let supports = tag["annotations"]["supports"].as_str().unwrap_or_default();
                let tag_name = tag["name"].as_str().unwrap_or_default();
                if name.is_empty() || tag_name.is_empty() || !detect::supports(supports, language) {
                    continue;
                }
                let better = match &found {
                    None => true,
                    // The stream named after the language, then `latest`.
                    Some((n, t)) => {
                        (name == language && n != language)
                            || (n == name && tag_name == "latest" && !t.ends_with(":latest"))
                    }
                };
                if better {
                    found = Some((name.to_string(), format!("{name}:{tag_name}")));
                }
            }
        }
        if let Some((_, tag)) = found {
            return Ok(Some((candidate.to_string(), tag)));
        }
    }
    Ok(None)
}

/// A local clone's `origin` URL and checked-out branch.
fn local_remote(dir: &Path) -> Result<(String, Option<String>)> {
    let repo = git2::Repository::discover(dir)
        .with_context(|| format!("{} is not a Git repository", dir.display()))?;
    let remote = repo.find_remote("origin").map_err(|_| {
        anyhow!(
            "{} has no 'origin' remote: builds clone a repository the server can reach; for local sources use --binary and 'psc start-build --from-dir'",
            dir.display()
        )
    })?;
    let url = remote
        .url()
        .map_err(|_| anyhow!("the 'origin' remote's URL is not UTF-8"))?
        .to_string();
    let branch = repo
        .head()
        .ok()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    Ok((url, branch))
}

fn root_files(dir: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect())
}

/// The files at the root of a shallow clone of `uri` at `git_ref`.
fn remote_root_files(
    uri: &str,
    git_ref: Option<&str>,
    context_dir: Option<&str>,
) -> Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    super::gitclone::clone(uri, git_ref, None, dir.path())
        .context("cloning the repository to detect its builder")?;
    root_files(&dir.path().join(context_dir.unwrap_or_default()))
}

pub async fn resolve(
    client: &Client,
    ns: &str,
    args: &NewBuildArgs,
    mut plan: SourcePlan,
) -> Result<SourcePlan> {
    // A local directory: its origin remote and branch.
    let mut local_dir = None;
    if !plan.uri.is_empty() && !plan.uri.contains("://") && Path::new(&plan.uri).is_dir() {
        let dir = Path::new(&plan.uri).to_path_buf();
        let (url, branch) = local_remote(&dir)?;
        println!("--> Using the 'origin' remote of {}: {url}", dir.display());
        plan.uri = url;
        if plan.git_ref.is_none() {
            plan.git_ref = branch;
        }
        local_dir = Some(dir);
    }
    match &plan.base {
        Some((None, tag)) => {
            let stream = tag.split(':').next().unwrap_or_default();
            let project = stream_project(client, ns, stream).await?;
            if project != ns {
                plan.base = Some((Some(project), tag.clone()));
            }
        }
        Some(_) => {}
        None if args.binary
            || args.strategy.as_deref() == Some("docker")
            || plan.uri.is_empty() => {}
        None => {
            let files = match &local_dir {
                Some(dir) => root_files(&dir.join(args.context_dir.as_deref().unwrap_or_default())),
                None => {
                    let (uri, r, c) = (
                        plan.uri.clone(),
                        plan.git_ref.clone(),
                        args.context_dir.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        remote_root_files(&uri, r.as_deref(), c.as_deref())
                    })
                    .await?
                }
            };
            let files = match files {
                Ok(f) => f,
                Err(e) if plan.source_strategy => return Err(e),
                Err(e) => {
                    eprintln!("warning: {e:#}; making a Docker build");
                    return Ok(plan);
                }
            };
            match detect::detect(files.iter().map(String::as_str)) {
                Some(Detected::Language(language)) => {
                    let (project, tag) = builder_for(client, ns, language).await?.ok_or_else(|| {
                        anyhow!("the source looks like {language}, but no image stream tag in {ns:?} or {SHARED_PROJECT:?} supports it: name a builder with BUILDER~URL or --image-stream")
                    })?;
                    println!("--> Found image stream tag {project}/{tag} for {language} source");
                    plan.base = Some(((project != ns).then_some(project), tag));
                    plan.source_strategy = true;
                }
                Some(Detected::Dockerfile) | None if plan.source_strategy => {
                    bail!("no builder detected for this source: name one with BUILDER~URL or --image-stream")
                }
                Some(Detected::Dockerfile) => println!("--> Found a Dockerfile: a Docker build"),
                None => eprintln!(
                    "warning: no Dockerfile and no language detected at the source's root; making a Docker build"
                ),
            }
        }
    }
    Ok(plan)
}
