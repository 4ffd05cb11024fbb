//! Build inputs on the node: a git checkout (git2), or binary input (a tar,
//! a gzipped tar, or one file), and the tar of the context sent to the
//! engine. Blocking work; callers run it on the blocking pool.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use git2::{Cred, FetchOptions, RemoteCallbacks, Repository};
use podspace_api::model::build::{GitSourceRevision, SourceControlUser, SourceRevision};

use podspace_builder::protocol::GitAuth;
use podspace_s2i::ignore::DockerIgnore;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Git(String),
    #[error("invalid context directory {0:?}")]
    ContextDir(String),
    #[error("the binary input is not a tar or gzipped tar archive (zip is not supported); send a directory or archive with --from-dir / --from-archive, or a single file with --from-file")]
    UnknownArchive,
    #[error("the binary input: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    TooLarge(String),
}

/// How big a build context (an unpacked binary input, or what is sent to
/// the engine) may get: a small archive must not expand without end.
#[derive(Debug, Clone, Copy)]
pub struct ContextLimits {
    pub bytes: u64,
    pub entries: u64,
}

impl ContextLimits {
    /// The limits the API granted with a lease.
    pub fn of(grant: &podspace_builder::protocol::LeaseGrant) -> ContextLimits {
        ContextLimits {
            bytes: grant.max_context_bytes,
            entries: grant.max_context_entries,
        }
    }

    fn check(&self, what: &str, bytes: u64, entries: u64) -> Result<(), SourceError> {
        if bytes > self.bytes {
            return Err(SourceError::TooLarge(format!(
                "{what} is larger than {} bytes (the server's --max-binary-context)",
                self.bytes
            )));
        }
        if entries > self.entries {
            return Err(SourceError::TooLarge(format!(
                "{what} has more than {} files and directories (the server's --max-binary-entries)",
                self.entries
            )));
        }
        Ok(())
    }
}

impl From<git2::Error> for SourceError {
    fn from(e: git2::Error) -> Self {
        SourceError::Git(e.message().to_string())
    }
}

/// `uri` without credentials, for logs and messages: `https://user:tok@h/r`
/// becomes `https://user:***@h/r`, `https://tok@h/r` becomes `https://***@h/r`.
pub fn display_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return uri.to_string();
    };
    let authority_end = uri[scheme_end..]
        .find('/')
        .map_or(uri.len(), |i| scheme_end + i);
    let Some(at) = uri[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return uri.to_string();
    };
    let creds = &uri[scheme_end..at];
    let shown = match creds.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{}{shown}{}", &uri[..scheme_end], &uri[at..])
}

/// What to check out.
pub struct GitSource<'a> {
    pub uri: &'a str,
    /// Branch or tag (`source.git.ref`); empty = the remote's HEAD.
    pub git_ref: &'a str,
    /// A commit (`spec.revision.git.commit`), fetched in full history.
    pub commit: Option<&'a str>,
    pub auth: Option<&'a GitAuth>,
}

fn callbacks(auth: Option<&GitAuth>) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    let mut tried = false;
    cb.credentials(move |_url, _user, _allowed| match auth {
        // libgit2 asks again after a refusal: one try, then the error.
        Some(a) if !tried => {
            tried = true;
            Cred::userpass_plaintext(&a.username, &a.password)
        }
        _ => Err(git2::Error::from_str(
            "authentication required or refused (set source.sourceSecret)",
        )),
    });
    cb
}

/// Clones into `dest` and checks out; returns `spec.revision` for the build.
pub fn checkout(
    src: &GitSource<'_>,
    dest: &Path,
    log: &dyn Fn(&str),
) -> Result<SourceRevision, SourceError> {
    let repo = Repository::init(dest)?;
    let mut remote = repo.remote_anonymous(src.uri)?;
    let target = match src.commit {
        Some(commit) => {
            log(&format!(
                "Cloning \"{}\" (commit {commit}) ...",
                display_uri(src.uri)
            ));
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(callbacks(src.auth));
            remote.fetch(
                &[
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                Some(&mut opts),
                None,
            )?;
            let obj = repo
                .revparse_single(commit)
                .or_else(|_| repo.revparse_single(&format!("origin/{commit}")))
                .map_err(|_| {
                    SourceError::Git(format!(
                        "commit {commit:?} not found in {}",
                        display_uri(src.uri)
                    ))
                })?;
            obj.peel_to_commit()?.id()
        }
        None => {
            let wanted = if src.git_ref.is_empty() {
                "HEAD"
            } else {
                src.git_ref
            };
            log(&format!(
                "Cloning \"{}\" (ref {wanted}) ...",
                display_uri(src.uri)
            ));
            remote.connect_auth(git2::Direction::Fetch, Some(callbacks(src.auth)), None)?;
            let advertised: Vec<String> = remote
                .list()?
                .iter()
                .map(|h| h.name().to_string())
                .collect();
            remote.disconnect()?;
            let full = [
                wanted.to_string(),
                format!("refs/heads/{wanted}"),
                format!("refs/tags/{wanted}"),
            ]
            .into_iter()
            .find(|c| advertised.contains(c))
            .ok_or_else(|| {
                SourceError::Git(format!(
                    "no branch or tag {wanted:?} in {}",
                    display_uri(src.uri)
                ))
            })?;
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(callbacks(src.auth)).depth(1);
            remote.fetch(
                &[format!("+{full}:refs/podspace/source")],
                Some(&mut opts),
                None,
            )?;
            repo.refname_to_id("refs/podspace/source")?
        }
    };
    let commit = repo.find_commit(target)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    repo.checkout_tree(commit.as_object(), Some(&mut co))?;
    repo.set_head_detached(target)?;
    let who = |s: git2::Signature<'_>| {
        Some(SourceControlUser {
            name: s.name().unwrap_or_default().to_string(),
            email: s.email().unwrap_or_default().to_string(),
            ..Default::default()
        })
    };
    let when = chrono::DateTime::from_timestamp(commit.time().seconds(), 0)
        .map(|t| t.to_rfc2822())
        .unwrap_or_default();
    let message = commit
        .summary()
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_string();
    log(&format!("Commit:\t{} ({message})", target));
    Ok(SourceRevision {
        kind: "Git".into(),
        git: Some(GitSourceRevision {
            commit: target.to_string(),
            author: who(commit.author()),
            committer: who(commit.committer()),
            message,
            date: when,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Unpacks binary input `file` into `dest`: a tar or gzipped tar, or,
/// with `as_file`, the file itself under that name. Refused past `limits`
/// before the entry that would cross them is written.
pub fn unpack_binary(
    file: &Path,
    dest: &Path,
    as_file: Option<&str>,
    limits: ContextLimits,
) -> Result<(), SourceError> {
    std::fs::create_dir_all(dest)?;
    if let Some(name) = as_file {
        if name.contains('/') || name == "." || name == ".." {
            return Err(SourceError::Io(std::io::Error::other(format!(
                "asFile {name:?} must be a plain file name"
            ))));
        }
        std::fs::copy(file, dest.join(name))?;
        return Ok(());
    }
    let mut f = File::open(file)?;
    let mut magic = [0u8; 262];
    let n = read_up_to(&mut f, &mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))
    } else if n >= 262 && &magic[257..262] == b"ustar" {
        Box::new(BufReader::new(f))
    } else if n == 0 {
        return Ok(());
    } else {
        return Err(SourceError::UnknownArchive);
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    let (mut bytes, mut entries) = (0u64, 0u64);
    for entry in archive.entries()? {
        let mut entry = entry?;
        // A sparse entry's size says nothing of what it unpacks to.
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            return Err(SourceError::TooLarge(
                "the binary input holds a sparse file, which is not supported".into(),
            ));
        }
        entries += 1;
        bytes += entry.size();
        limits.check("the unpacked binary input", bytes, entries)?;
        // `unpack_in` refuses entries that would land outside `dest`.
        entry.unpack_in(dest)?;
    }
    Ok(())
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `root/context_dir`, refusing anything that leaves `root`.
pub fn context_path(root: &Path, context_dir: &str) -> Result<PathBuf, SourceError> {
    let rel = Path::new(context_dir.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(SourceError::ContextDir(context_dir.into())),
        }
    }
    if !out.is_dir() {
        return Err(SourceError::ContextDir(context_dir.into()));
    }
    Ok(out)
}

/// Tars `dir` into `out` for the engine, leaving out what `.dockerignore`
/// excludes (never the Dockerfile at `dockerfile` or `.dockerignore`
/// itself: the engine needs them). Symlinks are stored as links, never
/// followed: a link in a repository must not read the node's files.
pub fn tar_context(
    dir: &Path,
    out: &Path,
    dockerfile: &str,
    limits: ContextLimits,
) -> Result<(), SourceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text),
        Err(_) => DockerIgnore::default(),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(out)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(false);
    let keep = |rel: &str| rel == dockerfile || rel == ".dockerignore";
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut stack = vec![String::new()];
    while let Some(rel_dir) = stack.pop() {
        let mut names: Vec<_> =
            std::fs::read_dir(dir.join(&rel_dir))?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let kind = e.file_type()?;
            let excluded = !keep(&rel) && ignore.excludes(&rel);
            if kind.is_dir() {
                // An excluded directory is still walked when a `!` pattern
                // may bring something below it back.
                if excluded && !ignore.has_exceptions() {
                    continue;
                }
                if !excluded {
                    entries += 1;
                    builder.append_dir(&rel, e.path())?;
                }
                stack.push(rel);
                continue;
            }
            if excluded {
                continue;
            }
            entries += 1;
            if kind.is_file() {
                bytes += e.metadata()?.len();
            }
            limits.check("the build context", bytes, entries)?;
            builder.append_path_with_name(e.path(), &rel)?;
        }
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        assert_eq!(
            display_uri("https://ada:s3cret@git.example.com/a/b.git"),
            "https://ada:***@git.example.com/a/b.git"
        );
        assert_eq!(
            display_uri("https://tok3n@git.example.com/a@b.git"),
            "https://***@git.example.com/a@b.git"
        );
        assert_eq!(display_uri("git://h/r.git"), "git://h/r.git");
        assert_eq!(display_uri("https://h/a@b"), "https://h/a@b");
    }

    #[test]
    fn context_dir_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("web")).unwrap();
        assert!(context_path(root.path(), "web").is_ok());
        assert!(context_path(root.path(), "./web/").is_ok());
        assert!(context_path(root.path(), "../etc").is_err());
        assert!(context_path(root.path(), "web/../..").is_err());
        assert!(context_path(root.path(), "missing").is_err());
    }

    #[test]
    fn binary_input_formats() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("in.tar");
        {
            let mut b = tar::Builder::new(File::create(&tarball).unwrap());
            let data = b"FROM x\n";
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, "Dockerfile", &data[..]).unwrap();
            b.finish().unwrap();
        }
        let out = dir.path().join("out");
        unpack_binary(&tarball, &out, None, BIG).unwrap();
        assert_eq!(std::fs::read(out.join("Dockerfile")).unwrap(), b"FROM x\n");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"PK\x03\x04 not a tar").unwrap();
        assert!(matches!(
            unpack_binary(&junk, &dir.path().join("o2"), None, BIG),
            Err(SourceError::UnknownArchive)
        ));
        unpack_binary(&junk, &dir.path().join("o3"), Some("app.bin"), BIG).unwrap();
        assert!(dir.path().join("o3/app.bin").is_file());
    }

    const BIG: ContextLimits = ContextLimits {
        bytes: 1 << 30,
        entries: 1000,
    };

    /// A gzipped tar of `n` files of `size` zero bytes (compresses ~1000:1).
    fn bomb(path: &Path, n: usize, size: u64) {
        let gz =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for i in 0..n {
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("f{i}"), std::io::repeat(0).take(size))
                .unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn unpacking_stops_at_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("bomb.tgz");
        bomb(&input, 3, 8 << 20);
        let limits = ContextLimits {
            bytes: 10 << 20,
            entries: 1000,
        };
        let out = dir.path().join("out");
        let err = unpack_binary(&input, &out, None, limits).unwrap_err();
        assert!(matches!(err, SourceError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("--max-binary-context"), "{err}");
        // Stopped before the entry that crosses the limit was written.
        assert!(out.join("f0").exists() && !out.join("f1").exists());
        let many = dir.path().join("many.tgz");
        bomb(&many, 20, 1);
        let err = unpack_binary(
            &many,
            &dir.path().join("o2"),
            None,
            ContextLimits {
                bytes: 1 << 20,
                entries: 10,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--max-binary-entries"), "{err}");
    }

    fn tar_names(path: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(File::open(path).unwrap());
        let mut names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_context_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("data/keep")).unwrap();
        std::fs::create_dir_all(ctx.join("node_modules/x")).unwrap();
        for f in [
            "Dockerfile",
            "app.txt",
            "huge.bin",
            "data/a.bin",
            "data/keep/b.bin",
            "node_modules/x/y.js",
        ] {
            std::fs::write(ctx.join(f), b"x").unwrap();
        }
        std::fs::write(
            ctx.join(".dockerignore"),
            "huge.bin
node_modules
data/**
!data/keep
Dockerfile
.dockerignore
",
        )
        .unwrap();
        let out = dir.path().join("ctx.tar");
        tar_context(&ctx, &out, "Dockerfile", BIG).unwrap();
        assert_eq!(
            tar_names(&out),
            vec![
                ".dockerignore",
                "Dockerfile",
                "app.txt",
                "data/keep",
                "data/keep/b.bin"
            ]
        );
        // The limits count what is sent.
        let err = tar_context(
            &ctx,
            &out,
            "Dockerfile",
            ContextLimits {
                bytes: 2,
                entries: 100,
            },
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::TooLarge(_)));
    }
}
