//! Garbage collection on SQLite and PostgreSQL, over real blob files: what
//! is reachable stays, the rest goes after the grace period, a dry run
//! changes nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use podspace_api::store::testing::TestDb as Db;
use podspace_api::{kinds, Object};
use podspace_oci::digest::Digest;
use podspace_registry::gc::{Collector, GcOptions, GcReport, GcTotals};
use podspace_registry::meta::{BlobRecord, ManifestRecord, ManifestRefs, RegistryStore};
use podspace_registry::storage::fs::FsStorage;
use podspace_registry::storage::BlobStorage;
use serde_json::json;

podspace_api::store_suite!(collection_keeps_what_is_reachable_and_sweeps_the_rest);

struct Fixture {
    meta: RegistryStore,
    storage: Arc<dyn BlobStorage>,
}

impl Fixture {
    /// A blob with these bytes in `repo`.
    async fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = Digest::sha256_of(bytes);
        let id = uuid::Uuid::new_v4().to_string();
        let mut up = self.storage.start_upload(&id).await.unwrap();
        self.storage
            .write(&mut up, Bytes::copy_from_slice(bytes))
            .await
            .unwrap();
        let location = self.storage.finish(up, &digest).await.unwrap();
        let record = BlobRecord {
            digest: digest.to_string(),
            size: bytes.len() as i64,
            location,
        };
        self.meta.add_blob(repo, &record).await.unwrap().unwrap();
        digest.to_string()
    }

    /// An image manifest of `config` and `layers` (with `subject`), stored
    /// by digest.
    async fn image(
        &self,
        repo: &str,
        config: &str,
        layers: &[&str],
        subject: Option<&str>,
    ) -> ManifestRecord {
        let desc =
            |d: &str| json!({"mediaType": "application/octet-stream", "digest": d, "size": 1});
        let mut body = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc(config),
            "layers": layers.iter().map(|l| desc(l)).collect::<Vec<_>>(),
        });
        if let Some(s) = subject {
            body["subject"] = desc(s);
        }
        let body = serde_json::to_vec(&body).unwrap();
        let record = ManifestRecord {
            repo: repo.into(),
            digest: Digest::sha256_of(&body).to_string(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body,
            subject: subject.map(str::to_string),
            artifact_type: None,
        };
        let mut blobs: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
        blobs.push(config.into());
        blobs.sort();
        blobs.dedup();
        let refs = ManifestRefs {
            blobs,
            manifests: vec![],
        };
        self.meta.put_manifest(&record, &refs, None).await.unwrap();
        record
    }

    async fn readable(&self, repo: &str, digest: &str) -> bool {
        let Some(b) = self.meta.repo_blob(repo, digest).await.unwrap() else {
            return false;
        };
        self.storage.read(&b.location, None).await.is_ok()
    }
}

fn digests(r: &GcReport) -> (Vec<String>, Vec<String>) {
    let mut m: Vec<String> = r.manifests.iter().map(|m| m.digest.clone()).collect();
    let mut b: Vec<String> = r.blobs.iter().map(|b| b.digest.clone()).collect();
    m.sort();
    b.sort();
    (m, b)
}

async fn collection_keeps_what_is_reachable_and_sweeps_the_rest(db: Db) {
    let store = db.open().await;
    store
        .create(&kinds::PROJECT, Object::new("Project", "", "p"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture {
        meta: RegistryStore::open(store.clone()).await.unwrap(),
        storage: Arc::new(FsStorage::open(dir.path()).await.unwrap()),
    };
    let repo = "p/app";
    let config = f.blob(repo, b"config").await;
    let tagged_layer = f.blob(repo, b"tagged layer").await;
    let history_layer = f.blob(repo, b"history layer").await;
    let child_layer = f.blob(repo, b"child layer").await;
    let loose_layer = f.blob(repo, b"loose layer").await;
    let orphan = f.blob(repo, b"no manifest names me").await;

    // Tagged in the registry.
    let tagged = f.image(repo, &config, &[&tagged_layer], None).await;
    f.meta
        .put_manifest(
            &tagged,
            &ManifestRefs {
                blobs: vec![config.clone(), tagged_layer.clone()],
                manifests: vec![],
            },
            Some("v1"),
        )
        .await
        .unwrap();
    // Only in the stream's history: pushed by tag, then the registry tag
    // was moved away.
    let old = f.image(repo, &config, &[&history_layer], None).await;
    let reference = format!("r:5000/{repo}@{}", old.digest);
    let event =
        podspace_api::imagestreams::push_event("v0", &old.digest, &reference, "r:5000/p/app");
    f.meta
        .put_tagged_manifest(
            &old,
            &ManifestRefs {
                blobs: vec![config.clone(), history_layer.clone()],
                manifests: vec![],
            },
            "v0",
            Object::new("Image", "", &old.digest),
            "p",
            "app",
            event,
        )
        .await
        .unwrap();
    f.meta.delete_tag(repo, "v0").await.unwrap();
    // A child of a tagged index.
    let child = f.image(repo, &config, &[&child_layer], None).await;
    let index_body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child.digest, "size": 1}],
    }))
    .unwrap();
    let index = ManifestRecord {
        repo: repo.into(),
        digest: Digest::sha256_of(&index_body).to_string(),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        body: index_body,
        subject: None,
        artifact_type: None,
    };
    f.meta
        .put_manifest(
            &index,
            &ManifestRefs {
                blobs: vec![],
                manifests: vec![child.digest.clone()],
            },
            Some("multi"),
        )
        .await
        .unwrap();
    // A referrer of a tagged image stays; one of a loose image goes.
    let kept_referrer = f.image(repo, &config, &[], Some(&tagged.digest)).await;
    let loose = f.image(repo, &config, &[&loose_layer], None).await;
    let loose_referrer = f.image(repo, &config, &[], Some(&loose.digest)).await;

    let totals = GcTotals::default();
    let collector = Collector::new(
        f.meta.clone(),
        store.clone(),
        f.storage.clone(),
        totals.clone(),
    );
    // Everything is younger than an hour.
    let r = collector
        .run(GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(
        digests(&r),
        (vec![], vec![]),
        "nothing is older than the grace"
    );

    // Row times are in seconds: let one pass, then a zero grace.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut want_manifests = vec![loose.digest.clone(), loose_referrer.digest.clone()];
    want_manifests.sort();
    let mut want_blobs = vec![loose_layer.clone(), orphan.clone()];
    want_blobs.sort();
    let dry = collector
        .run(GcOptions {
            grace: Duration::ZERO,
            dry_run: true,
        })
        .await
        .unwrap();
    assert_eq!(digests(&dry), (want_manifests.clone(), want_blobs.clone()));
    assert!(dry.freed_bytes > 0);
    assert!(f.readable(repo, &orphan).await, "a dry run deletes nothing");
    assert!(f
        .meta
        .manifest(repo, &loose.digest)
        .await
        .unwrap()
        .is_some());

    let wet = collector
        .run(GcOptions {
            grace: Duration::ZERO,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(digests(&wet), (want_manifests, want_blobs));
    assert!(wet.errors.is_empty(), "{:?}", wet.errors);
    for gone in [&loose_layer, &orphan] {
        assert!(!f.readable(repo, gone).await, "{gone} was collected");
    }
    assert!(f
        .meta
        .manifest(repo, &loose.digest)
        .await
        .unwrap()
        .is_none());
    for kept in [&config, &tagged_layer, &history_layer, &child_layer] {
        assert!(f.readable(repo, kept).await, "{kept} is still needed");
    }
    for kept in [&tagged, &old, &child, &index, &kept_referrer] {
        assert!(f.meta.manifest(repo, &kept.digest).await.unwrap().is_some());
    }
    let again = collector
        .run(GcOptions {
            grace: Duration::ZERO,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(
        digests(&again),
        (vec![], vec![]),
        "a second run finds nothing"
    );
}
