//! The storage driver suite: every driver passes the same tests.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use podspace_oci::digest::Digest;
use podspace_registry::storage::fs::FsStorage;
use podspace_registry::storage::s3::{S3Config, S3Storage};
use podspace_registry::storage::{BlobStorage, StorageError};

async fn collect(s: podspace_registry::storage::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = s;
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes `chunks`, finishes, and returns the location.
async fn store(d: &dyn BlobStorage, id: &str, chunks: &[&[u8]]) -> (String, Digest) {
    let whole: Vec<u8> = chunks.concat();
    let digest = Digest::sha256_of(&whole);
    let mut up = d.start_upload(id).await.unwrap();
    for c in chunks {
        d.write(&mut up, Bytes::copy_from_slice(c)).await.unwrap();
    }
    assert_eq!(up.written, whole.len() as u64);
    (d.finish(up, &digest).await.unwrap(), digest)
}

async fn write_read_ranges(d: Arc<dyn BlobStorage>, _other: Arc<dyn BlobStorage>) {
    // Past two S3 parts, written in uneven chunks.
    let big = data(11 * 1024 * 1024 + 17, 1);
    let (loc, _) = store(
        d.as_ref(),
        &uuid(),
        &[&big[..1000], &big[1000..2_000_000], &big[2_000_000..]],
    )
    .await;
    assert_eq!(collect(d.read(&loc, None).await.unwrap()).await, big);
    assert_eq!(
        collect(d.read(&loc, Some(10..20)).await.unwrap()).await,
        &big[10..20]
    );
    let tail = big.len() as u64;
    assert_eq!(
        collect(d.read(&loc, Some(tail - 5..tail)).await.unwrap()).await,
        &big[big.len() - 5..]
    );
    let (empty, _) = store(d.as_ref(), &uuid(), &[]).await;
    assert!(collect(d.read(&empty, None).await.unwrap())
        .await
        .is_empty());
}

async fn abort_leaves_nothing(d: Arc<dyn BlobStorage>, _other: Arc<dyn BlobStorage>) {
    let id = uuid();
    let mut up = d.start_upload(&id).await.unwrap();
    d.write(&mut up, Bytes::from(data(1000, 2))).await.unwrap();
    d.abort(up).await.unwrap();
    assert!(matches!(
        d.resume_upload(&id, "{}", 0).await,
        Err(StorageError::UploadLost(_))
    ));
}

/// A flushed upload is durable to its last byte: resumed from its saved
/// state by another instance (another replica) it continues exactly there,
/// within a part and across part boundaries; and an instance whose memory
/// of the upload is older than the saved state does not use it.
async fn resume_continues_from_the_saved_state(
    d: Arc<dyn BlobStorage>,
    other: Arc<dyn BlobStorage>,
) {
    let id = uuid();
    let part = podspace_registry::storage::s3::PART_SIZE;
    let all = data(2 * part + 300_000, 3);
    let cuts = [
        0,
        120_000,
        400_000,
        700_000,
        part + 100_000,
        part + 200_000,
        all.len(),
    ];
    // Who writes each piece (and resumes before it but the first).
    let writers = [&d, &other, &other, &d, &d, &other];
    let mut up = d.start_upload(&id).await.unwrap();
    for (i, w) in cuts.windows(2).enumerate() {
        let writer = writers[i];
        if i > 0 {
            let saved = writers[i - 1].saved_state(&up);
            let durable = up.durable;
            drop(up);
            up = writer.resume_upload(&id, &saved, durable).await.unwrap();
            assert_eq!(up.written, durable);
        }
        assert_eq!(up.written, w[0] as u64);
        writer
            .write(&mut up, Bytes::copy_from_slice(&all[w[0]..w[1]]))
            .await
            .unwrap();
        if i + 2 < cuts.len() {
            writer.flush(&mut up).await.unwrap();
            assert_eq!(up.durable, up.written, "flush makes every byte durable");
        }
    }
    let last = writers[writers.len() - 1];
    let digest = Digest::sha256_of(&all);
    assert_eq!(
        collect(last.read_upload(&mut up).await.unwrap()).await,
        all,
        "an unfinished upload reads back"
    );
    let loc = last.finish(up, &digest).await.unwrap();
    assert_eq!(collect(d.read(&loc, None).await.unwrap()).await, all);
}

/// A state older than the driver's last flush either continues from
/// exactly its own bytes or says the upload is lost, never mixes them.
async fn an_older_state_never_mixes_bytes(d: Arc<dyn BlobStorage>, other: Arc<dyn BlobStorage>) {
    let id = uuid();
    let mut up = d.start_upload(&id).await.unwrap();
    d.write(&mut up, Bytes::from_static(b"first "))
        .await
        .unwrap();
    d.flush(&mut up).await.unwrap();
    let (old, old_size) = (d.saved_state(&up), up.durable);
    d.write(&mut up, Bytes::from_static(b"second"))
        .await
        .unwrap();
    d.flush(&mut up).await.unwrap();
    drop(up);
    // Once here (whose memory is of the newer state), once elsewhere.
    let d = if old_size % 2 == 0 { d } else { other };
    match d.resume_upload(&id, &old, old_size).await {
        Ok(mut up) => {
            assert_eq!(up.written, old_size);
            d.write(&mut up, Bytes::from_static(b"third"))
                .await
                .unwrap();
            assert_eq!(
                collect(d.read_upload(&mut up).await.unwrap()).await,
                b"first third".to_vec()
            );
            d.abort(up).await.unwrap();
        }
        Err(e) => assert!(matches!(e, StorageError::UploadLost(_)), "{e}"),
    }
}

async fn same_content_twice_and_delete(d: Arc<dyn BlobStorage>, _other: Arc<dyn BlobStorage>) {
    let content = data(5000, 4);
    let (a, _) = store(d.as_ref(), &uuid(), &[&content]).await;
    let (b, _) = store(d.as_ref(), &uuid(), &[&content]).await;
    assert_eq!(collect(d.read(&a, None).await.unwrap()).await, content);
    assert_eq!(collect(d.read(&b, None).await.unwrap()).await, content);
    d.delete(&b).await.unwrap();
    if a != b {
        assert_eq!(
            collect(d.read(&a, None).await.unwrap()).await,
            content,
            "deleting one copy keeps the other"
        );
    }
    assert!(matches!(
        d.read(&b, None).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(d.delete(&b).await, Err(StorageError::NotFound(_))));
    assert!(
        d.read("../../etc/passwd", None).await.is_err(),
        "locations cannot leave the store"
    );
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

macro_rules! suite {
    ($driver:ident: $($name:ident),* $(,)?) => {
        suite!(#[cfg(all())] $driver: $($name),*);
    };
    (#[$attr:meta] $driver:ident: $($name:ident),* $(,)?) => {
        mod $driver {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[$attr]
            async fn $name() {
                let (d, other, _guard) = super::$driver().await;
                super::$name(d, other).await
            })*
        }
    };
}

/// Each fixture gives two driver instances over the same bytes, as two
/// replicas have.
type Drivers<G> = (Arc<dyn BlobStorage>, Arc<dyn BlobStorage>, G);

async fn fs() -> Drivers<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(FsStorage::open(dir.path()).await.unwrap());
    let b = Arc::new(FsStorage::open(dir.path()).await.unwrap());
    (a, b, dir)
}

suite!(fs: write_read_ranges, abort_leaves_nothing, resume_continues_from_the_saved_state, an_older_state_never_mixes_bytes, same_content_twice_and_delete);
suite!(s3_moto: write_read_ranges, abort_leaves_nothing, resume_continues_from_the_saved_state, an_older_state_never_mixes_bytes, same_content_twice_and_delete);

/// A moto S3 server on a free loopback port, killed with the test.
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_binary() -> Option<String> {
    if let Ok(p) = std::env::var("PODSPACE_MOTO") {
        return Some(p);
    }
    ["/opt/podspace/moto/bin/moto_server", "moto_server"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--help")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok()
        })
        .map(str::to_string)
}

async fn s3_moto() -> Drivers<Moto> {
    let (cfg, moto) = moto().await;
    let a = Arc::new(S3Storage::new(cfg.clone()));
    (a, Arc::new(S3Storage::new(cfg)), moto)
}

/// S3 only: the tail fragments an upload wrote are gone once it is
/// finished or aborted; only the blob stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_leaves_no_tail_fragments() {
    let (cfg, _moto) = moto().await;
    let d = S3Storage::new(cfg);
    let keys = |d: &S3Storage| {
        let list = d.client().list_objects_v2().bucket("podspace-suite").send();
        async move {
            let out = list.await.unwrap();
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect::<Vec<_>>()
        }
    };
    for finish in [true, false] {
        let id = uuid();
        let mut up = d.start_upload(&id).await.unwrap();
        let mut all = Vec::new();
        for seed in 0..3 {
            let chunk = data(300_000, seed);
            all.extend_from_slice(&chunk);
            d.write(&mut up, Bytes::from(chunk)).await.unwrap();
            d.flush(&mut up).await.unwrap();
        }
        let tails = |k: &Vec<String>| k.iter().filter(|k| k.contains(".tail.")).count();
        assert_eq!(tails(&keys(&d).await), 3, "one fragment per flush");
        if finish {
            d.finish(up, &Digest::sha256_of(&all)).await.unwrap();
        } else {
            d.abort(up).await.unwrap();
        }
        let left = keys(&d).await;
        assert_eq!(tails(&left), 0, "{left:?}");
        assert_eq!(
            left.iter().any(|k| k.ends_with(&id)),
            finish,
            "the blob stays only when finished: {left:?}"
        );
    }
}

/// A moto S3 server with the suite's bucket.
async fn moto() -> (S3Config, Moto) {
    let bin = moto_binary().expect(
        "moto_server not found: run scripts/setup/moto.sh (scripts/test does) or set PODSPACE_MOTO",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto starts");
    let moto = Moto(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cfg = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        bucket: "podspace-suite".into(),
        access_key: "test".into(),
        secret_key: "test".into(),
        prefix: "registry/".into(),
    };
    S3Storage::new(cfg.clone())
        .client()
        .create_bucket()
        .bucket("podspace-suite")
        .send()
        .await
        .expect("create bucket");
    (cfg, moto)
}

// Garage is optional here: without it these tests show as ignored, never
// as passed; `scripts/test` runs them (`--ignored`) when `garage` is on PATH.
suite!(#[ignore = "needs a garage binary on PATH"] s3_garage: write_read_ranges, abort_leaves_nothing, resume_continues_from_the_saved_state, an_older_state_never_mixes_bytes, same_content_twice_and_delete);

/// A single-node Garage (a real distributed S3 store) in a temp dir, when a
/// `garage` binary is on PATH; killed with the test.
struct Garage {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn garage_cli(config: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("garage")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("garage runs");
    assert!(
        out.status.success(),
        "garage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn s3_garage() -> Drivers<Garage> {
    let available = std::process::Command::new("garage")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "no garage binary on PATH (cargo install garage --locked)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (rpc, s3) = (free_port(), free_port());
    let config = dir.path().join("garage.toml");
    let secret: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) as u8))
        .collect();
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
            m = dir.path().join("meta").display(),
            d = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let child = std::process::Command::new("garage")
        .arg("-c")
        .arg(&config)
        .arg("server")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("garage server starts");
    let garage = Garage { child, _dir: dir };
    let mut node = String::new();
    for _ in 0..100 {
        let out = std::process::Command::new("garage")
            .arg("-c")
            .arg(&config)
            .args(["node", "id", "-q"])
            .output()
            .unwrap();
        if out.status.success() {
            node = String::from_utf8_lossy(&out.stdout)
                .trim()
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!node.is_empty(), "garage did not start");
    garage_cli(
        &config,
        &["layout", "assign", "-z", "dc1", "-c", "1G", &node],
    );
    garage_cli(&config, &["layout", "apply", "--version", "1"]);
    let key = garage_cli(&config, &["key", "create", "podspace"]);
    let field = |name: &str| {
        key.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in: {key}"))
    };
    let (access, secret_key) = (field("Key ID"), field("Secret key"));
    garage_cli(&config, &["bucket", "create", "podspace-suite"]);
    garage_cli(
        &config,
        &[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "podspace-suite",
            "--key",
            "podspace",
        ],
    );
    let cfg = S3Config {
        endpoint: Some(format!("http://127.0.0.1:{s3}")),
        region: "garage".into(),
        bucket: "podspace-suite".into(),
        access_key: access,
        secret_key,
        prefix: "registry/".into(),
    };
    let storage = S3Storage::new(cfg.clone());
    (Arc::new(storage), Arc::new(S3Storage::new(cfg)), garage)
}
