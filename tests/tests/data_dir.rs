//! The data directory is the server's alone: 0700, every file in it 0600;
//! a looser one (an older installation) is tightened at start; the registry
//! token signing key is in its own 0600 file, not in the database, and a
//! replica with another key file is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use podspace_e2e::{Api, Server};
use sha2::Digest;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push(p.clone());
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn data_files_are_private_and_the_key_is_not_in_the_database() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("modes").await?;
    // A blob in the fs storage.
    let blob = b"private bytes".to_vec();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)));
    let token = admin.token.clone().unwrap_or_default();
    let r = reqwest::Client::new()
        .post(format!(
            "http://{}/v2/modes/app/blobs/uploads/?digest={digest}",
            server.registry
        ))
        .bearer_auth(&token)
        .body(blob)
        .send()
        .await?;
    assert_eq!(r.status(), 201);

    let dir = server.data_dir.clone();
    assert_eq!(mode(&dir), 0o700, "the data directory");
    let mut all = Vec::new();
    files(&dir, &mut all);
    for name in [
        "podspace.db",
        "podspace.db-wal",
        "podspace.db-shm",
        "registry-token.key",
    ] {
        assert!(all.contains(&dir.join(name)), "{name} exists");
    }
    assert!(
        all.iter().any(|p| p.to_string_lossy().contains("/blobs/")),
        "a blob was stored: {all:?}"
    );
    for p in &all {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(p), want, "{}", p.display());
    }
    let key = std::fs::read(dir.join("registry-token.key"))?;
    assert_eq!(key.len(), 32);
    for db in ["podspace.db", "podspace.db-wal"] {
        let bytes = std::fs::read(dir.join(db))?;
        assert!(!contains(&bytes, &key), "the signing key is in {db}");
    }

    // An older installation: everything readable by others. Tightened.
    server.kill();
    for p in std::iter::once(&dir).chain(all.iter()) {
        let loose = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(loose))?;
    }
    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    assert_eq!(
        admin
            .get("/apis/project.openshift.io/v1/projects/modes")
            .await?
            .status,
        200
    );
    assert_eq!(mode(&dir), 0o700);
    for p in &all {
        if p.exists() {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(p), want, "{} after the restart", p.display());
        }
    }
    assert!(
        server.log_text().contains("readable by other users"),
        "the tightening is logged"
    );
    // The blob is still served.
    let r = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/modes/app/blobs/{digest}",
            server.registry
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);

    // Another key file for the same store: refused, clearly.
    server.kill();
    std::fs::write(dir.join("registry-token.key"), [7u8; 32])?;
    let err = server
        .restart()
        .expect_err("a replica with another key must not start");
    assert!(
        err.to_string()
            .contains("is not the one this store's other replicas use"),
        "{err}"
    );
    Ok(())
}
