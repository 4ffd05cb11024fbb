//! Build-time inputs of an S2I build (`source.secrets`, `source.configMaps`):
//! the directory each lands in inside the builder image, and the `upload/`
//! directories of the context that carry their files. A ConfigMap is copied
//! into the image and stays (as OpenShift keeps it); a Secret is bind-mounted
//! into assemble's own step, copied where the build asked, and removed when
//! assemble ends, so no layer ever holds it (OpenShift only truncates it).

use std::path::Path;

use thiserror::Error;

/// Where the Secrets' files travel in the context (`<dir>/<index>/<key>`).
pub const SECRETS_DIR: &str = "upload/secrets";
/// Where the ConfigMaps' files travel in the context.
pub const CONFIG_MAPS_DIR: &str = "upload/configmaps";
/// Where assemble's step sees [`SECRETS_DIR`].
pub const SECRETS_MOUNT: &str = "/tmp/.s2i-secrets";

/// One Secret or ConfigMap as the generated Dockerfile uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The absolute directory in the image ([`target`]).
    pub target: String,
    /// Its keys, which are plain file names.
    pub files: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InjectionError {
    #[error("destinationDir {0:?} must not contain '..'")]
    ParentDir(String),
    #[error(
        "destinationDir {0:?} has a character a build cannot place files under (control characters, '$', '\"', '\\\\', '`')"
    )]
    Character(String),
    #[error("{0:?} is no plain file name")]
    Key(String),
}

/// The absolute directory `destination_dir` names in the builder image: an
/// absolute one as given, a relative one under the image's working directory
/// (`WorkingDir`, which OpenShift's builders set to where the source goes),
/// else under the source directory `<destination>/src`.
pub fn target(
    destination_dir: &str,
    working_dir: Option<&str>,
    destination: &str,
) -> Result<String, InjectionError> {
    let bad = |c: char| c.is_control() || matches!(c, '$' | '"' | '\\' | '`');
    if destination_dir.chars().any(bad) {
        return Err(InjectionError::Character(destination_dir.into()));
    }
    let base = match working_dir.filter(|w| w.starts_with('/')) {
        Some(w) => w.to_string(),
        None => format!("{}/src", destination.trim_end_matches('/')),
    };
    let full = match destination_dir.starts_with('/') {
        true => destination_dir.to_string(),
        false => format!("{base}/{destination_dir}"),
    };
    let mut parts = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(InjectionError::ParentDir(destination_dir.into())),
            p => parts.push(p),
        }
    }
    if parts.iter().any(|p| p.chars().any(bad)) {
        return Err(InjectionError::Character(full));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Writes one input's files into `dir` (created): readable by the assemble
/// user the image runs, since the engine hands them over owned by root; the
/// work directory that holds the context keeps them from other users.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for (name, bytes) in files {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                InjectionError::Key(name.clone()),
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o644)
            .open(dir.join(name))?;
        file.write_all(bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |d, w| target(d, w, "/usr/libexec/../tmp/");
        assert_eq!(
            t("", Some("/opt/app-root/src")).unwrap(),
            "/opt/app-root/src"
        );
        assert_eq!(
            t(".", Some("/opt/app-root/src")).unwrap(),
            "/opt/app-root/src"
        );
        assert_eq!(
            t("conf/./x/", Some("/opt/app-root/src")).unwrap(),
            "/opt/app-root/src/conf/x"
        );
        assert_eq!(t("/etc/app", Some("/w")).unwrap(), "/etc/app");
        assert_eq!(
            target("keys", None, "/tmp").unwrap(),
            "/tmp/src/keys",
            "no WorkingDir: under the source"
        );
        assert_eq!(
            target("a/../b", None, "/tmp"),
            Err(InjectionError::ParentDir("a/../b".into()))
        );
        assert!(matches!(
            target("$HOME", None, "/tmp"),
            Err(InjectionError::Character(_))
        ));
        assert!(matches!(
            target("a\nb", None, "/tmp"),
            Err(InjectionError::Character(_))
        ));
    }

    #[test]
    fn files_are_written_readable_and_names_checked() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempdir();
        let dir = root.join("upload/secrets/0");
        write_files(&dir, &[("token".into(), b"s3cret".to_vec())]).unwrap();
        assert_eq!(std::fs::read(dir.join("token")).unwrap(), b"s3cret");
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let err = write_files(&dir, &[("../x".into(), vec![])]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(!root.join("upload/secrets/x").exists());
        let _ = std::fs::remove_dir_all(root);
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "s2i-injection-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
