//! Binary build input for `psc start-build --from-*` (builds.md §10): each
//! kind becomes a request body streamed as it is produced, never held whole.

use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, SyncIoBridge};

pub enum Input {
    Dir(PathBuf),
    File(String),
    /// A path, or `-` for stdin.
    Archive(String),
    Repo(PathBuf),
}

/// A prepared upload: the body and its query parameters.
pub struct Upload {
    pub body: reqwest::Body,
    pub query: Vec<(&'static str, String)>,
    pub failure: Failure,
}

/// Why producing the body failed, kept apart because the HTTP error alone
/// would only say the request broke off.
#[derive(Clone, Default)]
pub struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|f| f.clone())
    }

    fn set(&self, e: &io::Error) {
        if let Ok(mut f) = self.0.lock() {
            f.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Prints the `Uploading …` line and starts producing the body.
pub async fn prepare(input: &Input, commit: Option<&str>) -> Result<Upload> {
    let failure = Failure::default();
    let mut query = Vec::new();
    let body = match input {
        Input::Dir(dir) => {
            if !dir.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            eprintln!(
                "Uploading directory {:?} as binary input for the build ...",
                dir.display().to_string()
            );
            if let Some(c) = commit {
                query.push(("revision.commit", c.to_string()));
            }
            tar_gz_body(dir.clone(), failure.clone())
        }
        Input::File(file) => {
            if file == "-" {
                bail!("--from-file cannot read stdin: use --from-archive=- for an archive");
            }
            let path = local_path(file)?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{file}: cannot name the uploaded file after this path"))?;
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {file}"))?;
            eprintln!("Uploading file {file:?} as binary input for the build ...");
            query.push(("asFile", name.to_string()));
            if let Some(c) = commit {
                query.push(("revision.commit", c.to_string()));
            }
            body_of(f, async { Ok(()) }, failure.clone())
        }
        Input::Archive(archive) if archive == "-" => {
            eprintln!("Uploading archive from stdin as binary input for the build ...");
            if let Some(c) = commit {
                query.push(("revision.commit", c.to_string()));
            }
            body_of(tokio::io::stdin(), async { Ok(()) }, failure.clone())
        }
        Input::Archive(archive) => {
            let path = local_path(archive)?;
            let mut head = Vec::with_capacity(512);
            std::fs::File::open(path)
                .and_then(|f| f.take(512).read_to_end(&mut head))
                .with_context(|| format!("cannot read {archive}"))?;
            if !looks_like_archive(&head) {
                eprintln!("WARNING: the provided file may not be an archive (tar, tar.gz, or zip), use --from-file to prevent extraction");
            }
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {archive}"))?;
            eprintln!("Uploading archive file {archive:?} as binary input for the build ...");
            if let Some(c) = commit {
                query.push(("revision.commit", c.to_string()));
            }
            body_of(f, async { Ok(()) }, failure.clone())
        }
        Input::Repo(dir) => {
            let (body, revision) = repo_body(dir, commit, failure.clone()).await?;
            query.extend(revision);
            body
        }
    };
    Ok(Upload {
        body,
        query,
        failure,
    })
}

/// Local files only: downloading a URL first is not implemented.
fn local_path(arg: &str) -> Result<&Path> {
    if arg.starts_with("http://") || arg.starts_with("https://") {
        bail!("uploading from a URL is not supported: download {arg} and give its path");
    }
    Ok(Path::new(arg))
}

/// tar (ustar magic at 257), gzip or zip, judged by the first bytes.
fn looks_like_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"PK\x03\x04")
        || head.get(257..262) == Some(b"ustar")
}

/// A body reading `reader` to its end, then failing if `done` says the
/// producer failed (so a half-written archive is never sent as complete).
fn body_of<R, F>(reader: R, done: F, failure: Failure) -> reqwest::Body
where
    R: AsyncRead + Send + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let record = move |e: io::Error| {
        failure.set(&e);
        e
    };
    let record_tail = record.clone();
    let tail =
        futures_util::stream::once(async move { done.await.err().map(|e| Err(record_tail(e))) })
            .filter_map(futures_util::future::ready);
    let stream = ReaderStream::with_capacity(reader, 64 * 1024)
        .map(move |chunk| chunk.map_err(&record))
        .chain(tail);
    reqwest::Body::wrap_stream(stream)
}

/// `--from-dir`: a gzipped tar of the directory's contents, written on a
/// blocking thread into a pipe the request reads from.
fn tar_gz_body(dir: PathBuf, failure: Failure) -> reqwest::Body {
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let bridge = SyncIoBridge::new(writer);
    let task = tokio::task::spawn_blocking(move || write_tar_gz(&dir, bridge));
    let done = async move { task.await.map_err(io::Error::other)? };
    body_of(reader, done, failure)
}

fn write_tar_gz(dir: &Path, out: impl Write) -> io::Result<()> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    // Symlinks go in as links: following them could leave the directory.
    tar.follow_symlinks(false);
    append_tree(&mut tar, dir, Path::new(""))?;
    tar.into_inner()?.finish()?.flush()
}

fn append_tree<W: Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &Path) -> io::Result<()> {
    let here = root.join(rel);
    let with_path = |p: &Path| {
        let p = p.display().to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{p}: {e}"))
    };
    let mut entries = std::fs::read_dir(&here)
        .and_then(|d| d.collect::<io::Result<Vec<_>>>())
        .map_err(with_path(&here))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name() == ".git" {
            continue;
        }
        let rel = rel.join(entry.file_name());
        let path = root.join(&rel);
        let kind = entry.file_type().map_err(with_path(&path))?;
        // Sockets, fifos and devices are no build input.
        if !(kind.is_dir() || kind.is_file() || kind.is_symlink()) {
            continue;
        }
        tar.append_path_with_name(&path, &rel)
            .map_err(with_path(&path))?;
        if kind.is_dir() {
            append_tree(tar, root, &rel)?;
        }
    }
    Ok(())
}

async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `revision.*` query parameters from `git log -1 --format=…` output
/// (fields separated by NUL, the message last).
fn revision_params(log: &str) -> Result<Vec<(&'static str, String)>> {
    let fields: Vec<&str> = log.splitn(6, '\0').collect();
    let [commit, author_name, author_email, committer_name, committer_email, message] = fields[..]
    else {
        bail!("unexpected output from git log: {log:?}");
    };
    Ok(vec![
        ("revision.commit", commit.trim().to_string()),
        ("revision.message", message.trim().to_string()),
        ("revision.authorName", author_name.to_string()),
        ("revision.authorEmail", author_email.to_string()),
        ("revision.committerName", committer_name.to_string()),
        ("revision.committerEmail", committer_email.to_string()),
    ])
}

/// `--from-repo`: `git archive` of the commit, and its revision.
async fn repo_body(
    dir: &Path,
    commit: Option<&str>,
    failure: Failure,
) -> Result<(reqwest::Body, Vec<(&'static str, String)>)> {
    let commit = commit.unwrap_or("HEAD");
    let root = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"]).await?.trim());
    // git archive run in a sub-directory would archive only that; the build
    // gets the whole repository (as oc does).
    let here = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if root.canonicalize().unwrap_or_else(|_| root.clone()) != here {
        eprintln!(
            "WARNING: Using root dir {} for Git repository",
            root.display()
        );
    }
    let log = git(
        &root,
        &[
            "log",
            "-1",
            "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%B",
            commit,
            "--",
        ],
    )
    .await?;
    let revision = revision_params(&log)?;
    let hash = revision[0].1.clone();
    eprintln!(
        "Uploading {:?} at commit {commit:?} as binary input for the build ...",
        dir.display().to_string()
    );
    let mut child = tokio::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["archive", "--format=tar", &hash])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run git")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("git archive has no output pipe"))?;
    let done = async move {
        let status = child.wait().await?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "git archive {hash} failed ({status})"
            )))
        }
    };
    Ok((body_of(stdout, done, failure), revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_sniffing() {
        assert!(looks_like_archive(&[0x1f, 0x8b, 8, 0]));
        assert!(looks_like_archive(b"PK\x03\x04rest"));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(looks_like_archive(&tar));
        assert!(!looks_like_archive(b"FROM alpine\n"));
    }

    #[test]
    fn revision_from_git_log() {
        let params =
            revision_params("abc123\0Ann\0ann@x\0Cid\0cid@x\0Fix: things\n\nbody\n").unwrap();
        assert_eq!(params[0], ("revision.commit", "abc123".to_string()));
        assert_eq!(
            params[1],
            ("revision.message", "Fix: things\n\nbody".to_string())
        );
        assert_eq!(params[5], ("revision.committerEmail", "cid@x".to_string()));
        assert!(revision_params("abc").is_err());
    }

    #[test]
    fn tar_leaves_out_git() {
        let dir = std::env::temp_dir().join(format!("psc-upload-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(dir.join("src/main.c"), "int main;").unwrap();
        let mut out = Vec::new();
        write_tar_gz(&dir, &mut out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&out[..]));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"src/main.c".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with(".git")), "{names:?}");
    }
}
