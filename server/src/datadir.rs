//! The data directory is the server's alone: it holds the database
//! (Secrets, token hashes), blobs, build inputs and the registry token
//! signing key. It is created 0700; at start a looser directory or key
//! file is tightened (and logged), and the server refuses to start when
//! that fails. Files inside are made 0600 by the code that creates them.
//!
//! The signing key lives in its own 0600 file, not in the database, so a
//! database backup or a PostgreSQL reader does not carry it; the store
//! keeps only its SHA-256, so a replica started with another key file is
//! refused instead of issuing tokens the others reject.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use podspace_api::store::Store;
use sha2::{Digest, Sha256};

const LEGACY_KEY: &str = "registry-token";
const KEY_FINGERPRINT: &str = "registry-token-sha256";
const KEY_BYTES: usize = 32;

/// Sets `path`'s mode to `mode` if it grants more; says whether it did.
fn tighten(path: &Path, mode: u32) -> anyhow::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading the mode of {}", path.display())),
    };
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o777 & !mode == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "{} is readable by other users (mode {:o}) and cannot be made {mode:o}; refusing to start",
            path.display(),
            meta.permissions().mode() & 0o777
        )
    })?;
    Ok(true)
}

/// Every file and directory under `dir` made private (an installation from
/// before this rule, whose blobs were 0644).
fn tighten_tree(dir: &Path) -> anyhow::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                changed += usize::from(tighten(&entry.path(), 0o700)?);
                stack.push(entry.path());
            } else if kind.is_file() {
                changed += usize::from(tighten(&entry.path(), 0o600)?);
            }
        }
    }
    Ok(changed)
}

/// The SQLite database's files for `db`, if it is a SQLite URL.
pub fn sqlite_files(db: &str) -> Vec<PathBuf> {
    let Some(rest) = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
    else {
        return Vec::new();
    };
    let file = rest.split('?').next().unwrap_or(rest);
    if file.is_empty() || file.starts_with(':') {
        return Vec::new();
    }
    ["", "-wal", "-shm", ".lock"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{file}{suffix}")))
        .collect()
}

/// Creates `dir` 0700 or tightens it, and tightens the key-holding files.
pub fn secure(dir: &Path, key_files: &[PathBuf]) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    if tighten(dir, 0o700)? {
        // Made before files were private: tighten what is inside too.
        let inside = tighten_tree(dir)?;
        tracing::warn!(dir = %dir.display(), files = inside, "the data directory was readable by other users: made 0700, its files 0600");
    }
    for f in key_files {
        if tighten(f, 0o600)? {
            tracing::warn!(file = %f.display(), "a key-holding file was readable by other users: made 0600");
        }
    }
    Ok(())
}

fn fingerprint(key: &[u8]) -> Vec<u8> {
    Sha256::digest(key).to_vec()
}

/// The registry token signing key from `path`, made on first start (from
/// the key an older version kept in the store, if there is one, so tokens
/// already issued stay valid).
pub async fn token_key(store: &Store, path: &Path) -> anyhow::Result<Vec<u8>> {
    let key = match std::fs::read(path) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = match store.stored_server_value(LEGACY_KEY).await? {
                Some(legacy) => legacy,
                None => {
                    use rand::RngCore;
                    let mut fresh = vec![0u8; KEY_BYTES];
                    rand::rngs::OsRng.fill_bytes(&mut fresh);
                    fresh
                }
            };
            write_new(path, &key)?;
            tracing::info!(file = %path.display(), "registry token signing key written");
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if key.len() < KEY_BYTES {
        bail!(
            "{} holds {} bytes; a registry token key needs at least {KEY_BYTES}",
            path.display(),
            key.len()
        );
    }
    tighten(path, 0o600)?;
    let stored = store
        .server_value(KEY_FINGERPRINT, &fingerprint(&key))
        .await?;
    if stored != fingerprint(&key) {
        bail!(
            "the registry token key in {} is not the one this store's other replicas use: give every replica the same key file (--registry-token-key)",
            path.display()
        );
    }
    store.delete_server_value(LEGACY_KEY).await?;
    Ok(key)
}

/// This replica's name in the controller leases, kept in the data
/// directory: a replica restarted after a crash takes its own leases back
/// at once instead of waiting for them to expire. (Two replicas never
/// share a data directory.)
pub fn replica_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = format!("replica-{}", uuid::Uuid::new_v4().simple());
    let _ = std::fs::remove_file(&path);
    write_new(&path, id.as_bytes())?;
    Ok(id)
}

/// Writes `bytes` to a new 0600 file at `path` (never over another one).
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_modes_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("registry")).unwrap();
        std::fs::write(dir.join("registry/blob"), b"x").unwrap();
        std::fs::write(dir.join("podspace.db"), b"x").unwrap();
        std::fs::set_permissions(
            dir.join("podspace.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        secure(
            &dir,
            &sqlite_files(&format!("sqlite://{}/podspace.db", dir.display())),
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("registry")), 0o700);
        assert_eq!(mode(&dir.join("registry/blob")), 0o600);
        assert_eq!(mode(&dir.join("podspace.db")), 0o600);
        // A new directory is made private.
        let fresh = root.path().join("fresh/data");
        secure(&fresh, &[]).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_files("sqlite:///d/p.db?mode=rwc")[1],
            PathBuf::from("/d/p.db-wal")
        );
        assert!(sqlite_files("postgres://u@h/db").is_empty());
        assert!(sqlite_files("sqlite::memory:").is_empty());
    }
}
