//! `source.secrets` and `source.configMaps` on the node: the files the lease
//! carried, written where the strategy's build reads them — into the
//! Docker context at each `destinationDir`, or into an S2I context's
//! `upload/` directories ([`podspace_s2i::injection`]). The log names each
//! input and counts its files; no value ever reaches it.

use std::path::{Component, Path, PathBuf};

use podspace_s2i::injection::{self, Injection, CONFIG_MAPS_DIR, SECRETS_DIR};

use super::log::BuildLog;
use super::run::Outcome;
use podspace_builder::protocol::{InputFiles, InputKind, LeaseGrant};

const REASON: &str = "CannotInjectBuildInputs";

fn noun(kind: InputKind) -> &'static str {
    match kind {
        InputKind::Secret => "secret",
        InputKind::ConfigMap => "configMap",
    }
}

fn decoded(input: &InputFiles) -> Result<Vec<(String, Vec<u8>)>, Outcome> {
    input.decoded().map_err(|e| Outcome::Error(REASON, e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Outcome> + Send + 'static,
) -> Result<T, Outcome> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Outcome::Error(REASON, e.to_string()))?
}

/// The Docker strategy: each input's files in the context directory `ctx`
/// under its (relative) `destinationDir`, for the Dockerfile to `COPY`.
/// The context is the user's source, so no directory on the way may be a
/// symlink (which could point out of the work directory), nor a file the
/// build replaces.
pub async fn write_into_context(
    ctx: &Path,
    grant: &LeaseGrant,
    log: &BuildLog,
) -> Result<(), Outcome> {
    for input in &grant.input_files {
        let files = decoded(input)?;
        let what = format!("{} {:?}", noun(input.kind), input.name);
        let dest = input.destination_dir.clone();
        let root = ctx.to_path_buf();
        let n = files.len();
        let shown = blocking(move || {
            let dir = context_dir(&root, &dest)
                .map_err(|e| Outcome::Failed(REASON, format!("{what}: {e}")))?;
            for (name, _) in &files {
                let meta = std::fs::symlink_metadata(dir.join(name));
                if meta.is_ok_and(|m| !m.is_file()) {
                    return Err(Outcome::Failed(
                        REASON,
                        format!("{what}: {name:?} in {dest:?} is not a regular file in the source"),
                    ));
                }
            }
            injection::write_files(&dir, &files)
                .map_err(|e| Outcome::Error(REASON, format!("{what}: {e}")))?;
            Ok(match dest.as_str() {
                "" | "." => "the build context".to_string(),
                d => format!("{d:?} in the build context"),
            })
        })
        .await?;
        log.line(&format!(
            "Copying {} {:?} to {shown} ({n} files)",
            noun(input.kind),
            input.name
        ));
    }
    Ok(())
}

/// `root/rel`, created, through real directories only.
fn context_dir(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut dir = root.to_path_buf();
    for part in Path::new(rel).components() {
        match part {
            Component::CurDir => continue,
            Component::Normal(p) => dir.push(p),
            _ => {
                return Err(format!(
                    "destinationDir {rel:?} must be a relative path inside the context"
                ))
            }
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{} in the source is not a directory",
                    dir.display()
                ))
            }
            Err(_) => std::fs::create_dir(&dir).map_err(|e| e.to_string())?,
        }
    }
    Ok(dir)
}

/// What an S2I plan injects: `(configMaps, secrets)`, their files written
/// under `context` (the directory holding `upload/`). Relative destinations
/// are placed by `working_dir`/`destination` ([`injection::target`]).
pub async fn write_for_s2i(
    context: &Path,
    grant: &LeaseGrant,
    working_dir: Option<&str>,
    destination: &str,
    log: &BuildLog,
) -> Result<(Vec<Injection>, Vec<Injection>), Outcome> {
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for input in &grant.input_files {
        let what = format!("{} {:?}", noun(input.kind), input.name);
        let target = injection::target(&input.destination_dir, working_dir, destination)
            .map_err(|e| Outcome::Failed(REASON, format!("{what}: {e}")))?;
        let files = decoded(input)?;
        let (list, base) = match input.kind {
            InputKind::Secret => (&mut secrets, SECRETS_DIR),
            InputKind::ConfigMap => (&mut maps, CONFIG_MAPS_DIR),
        };
        let dir = context.join(base).join(list.len().to_string());
        let names: Vec<String> = files.iter().map(|(k, _)| k.clone()).collect();
        let n = names.len();
        blocking(move || {
            injection::write_files(&dir, &files)
                .map_err(|e| Outcome::Error(REASON, format!("{what}: {e}")))
        })
        .await?;
        let note = match input.kind {
            InputKind::Secret => "while assemble runs",
            InputKind::ConfigMap => "kept in the image",
        };
        log.line(&format!(
            "Injecting {} {:?} into {target} ({n} files, {note})",
            noun(input.kind),
            input.name
        ));
        list.push(Injection {
            target,
            files: names,
        });
    }
    Ok((maps, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_dirs_never_leave_the_context() {
        let root = tempfile::tempdir().unwrap();
        let ctx = root.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::os::unix::fs::symlink(root.path(), ctx.join("up")).unwrap();
        assert_eq!(context_dir(&ctx, "./a/b").unwrap(), ctx.join("a/b"));
        assert!(ctx.join("a/b").is_dir());
        assert!(context_dir(&ctx, "up/x")
            .unwrap_err()
            .contains("not a directory"));
        assert!(!root.path().join("x").exists());
        assert!(context_dir(&ctx, "../x").is_err());
        assert!(context_dir(&ctx, "/etc").is_err());
    }
}
