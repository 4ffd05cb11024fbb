//! The `upload/` tree of an S2I build context: the source copied (without
//! `.git` and what `.s2iignore` names; symlinks copied as links, never
//! followed), and the scripts that travel with the build, mode 0755.

use std::path::{Path, PathBuf};

use crate::ignore::DockerIgnore;
use crate::scripts::Script;

/// The source's own copy of `script`: `.s2i/bin/<name>` (or the legacy
/// `.sti/bin/<name>`), relative to `source`.
pub fn source_script(source: &Path, script: Script) -> Option<String> {
    [".s2i/bin", ".sti/bin"]
        .iter()
        .map(|d| format!("{d}/{}", script.name()))
        .find(|rel| source.join(rel).is_file())
}

/// Writes a script to `path`, executable.
pub fn write_script(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// Copies the source tree `from` into `dest`.
pub fn copy_source(from: &Path, dest: &Path) -> std::io::Result<()> {
    let ignore = std::fs::read_to_string(from.join(".s2iignore"))
        .map(|t| DockerIgnore::parse(&t))
        .unwrap_or_default();
    std::fs::create_dir_all(dest)?;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(from.join(&rel))? {
            let entry = entry?;
            let rel_path = rel.join(entry.file_name());
            let rel_text = rel_path.to_string_lossy();
            if rel_text == ".git" || ignore.excludes(&rel_text) {
                continue;
            }
            let kind = entry.file_type()?;
            let target = dest.join(&rel_path);
            if kind.is_dir() {
                std::fs::create_dir_all(&target)?;
                stack.push(rel_path);
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
            } else if kind.is_file() {
                std::fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_without_git_and_ignored_files() {
        let root = std::env::temp_dir().join(format!("s2i-layout-{}", std::process::id()));
        let (src, dest) = (root.join("src"), root.join("dest"));
        std::fs::create_dir_all(src.join(".git")).unwrap();
        std::fs::create_dir_all(src.join(".s2i/bin")).unwrap();
        std::fs::create_dir_all(src.join("logs")).unwrap();
        std::fs::write(src.join(".git/HEAD"), "x").unwrap();
        std::fs::write(src.join("app.py"), "print()").unwrap();
        std::fs::write(src.join("logs/a.log"), "x").unwrap();
        std::fs::write(src.join(".s2iignore"), "logs\n").unwrap();
        std::fs::write(src.join(".s2i/bin/assemble"), "#!/bin/sh").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        copy_source(&src, &dest).unwrap();
        assert!(dest.join("app.py").is_file());
        assert!(!dest.join(".git").exists() && !dest.join("logs").exists());
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            source_script(&src, Script::Assemble).as_deref(),
            Some(".s2i/bin/assemble")
        );
        assert_eq!(source_script(&src, Script::Run), None);
        let _ = std::fs::remove_dir_all(root);
    }
}
