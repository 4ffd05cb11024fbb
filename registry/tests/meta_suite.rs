//! The registry's tables, on SQLite and on PostgreSQL (the store suite's
//! databases: `PODSPACE_TEST_POSTGRES_URL`, or `PODSPACE_SKIP_POSTGRES=1`).

use podspace_api::store::testing::TestDb as Db;
use podspace_api::store::StoreError;
use podspace_api::{kinds, Object};
use podspace_registry::meta::{
    BlobRecord, ManifestRecord, ManifestRefs, RegistryStore, UploadClaim, UploadRecord,
};

async fn meta(db: &Db) -> RegistryStore {
    RegistryStore::open(db.open().await)
        .await
        .expect("registry tables")
}

podspace_api::store_suite!(
    a_push_by_tag_is_one_transaction_with_its_stream,
    blobs_are_linked_per_repository,
    upload_sessions_are_claimed_and_fenced,
    older_databases_gain_new_columns,
    a_blob_claimed_for_deletion_takes_no_new_use,
    named_and_recent_rows_are_not_swept,
);

fn blob(c: char, location: &str) -> BlobRecord {
    BlobRecord {
        digest: format!("sha256:{}", c.to_string().repeat(64)),
        size: 3,
        location: location.into(),
    }
}

fn manifest(repo: &str, c: char) -> ManifestRecord {
    ManifestRecord {
        repo: repo.into(),
        digest: format!("sha256:{}", c.to_string().repeat(64)),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: b"{}".to_vec(),
        subject: None,
        artifact_type: None,
    }
}

fn is_missing(r: Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::Rejected(s)) if s.reason == podspace_api::Reason::NotFound)
}

/// Once a sweep claims a blob, a finished upload of it waits, a mount
/// falls back to an upload, a manifest naming it is refused and reads miss
/// it; after the sweep forgets it, the same digest is a new blob.
async fn a_blob_claimed_for_deletion_takes_no_new_use(db: Db) {
    let meta = meta(&db).await;
    let b = blob('c', "blobs/old");
    meta.add_blob("p/a", &b).await.unwrap();
    let future = chrono::Utc::now().timestamp() + 10;
    assert_eq!(
        meta.claim_blob_for_deletion(&b.digest, future, 0)
            .await
            .unwrap(),
        Some("blobs/old".into())
    );
    assert_eq!(
        meta.claim_blob_for_deletion(&b.digest, future, 0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.add_blob("p/a", &blob('c', "blobs/new")).await.unwrap(),
        None
    );
    assert!(!meta.mount_blob("p/b", "p/a", &b.digest).await.unwrap());
    assert_eq!(meta.repo_blob("p/a", &b.digest).await.unwrap(), None);
    let refs = ManifestRefs {
        blobs: vec![b.digest.clone()],
        manifests: vec![],
    };
    assert!(is_missing(
        meta.put_manifest(&manifest("p/a", 'm'), &refs, Some("v1"))
            .await
    ));
    assert_eq!(
        meta.manifest("p/a", &manifest("p/a", 'm').digest)
            .await
            .unwrap(),
        None
    );
    meta.forget_blob(&b.digest).await.unwrap();
    let fresh = blob('c', "blobs/new");
    assert_eq!(meta.add_blob("p/a", &fresh).await.unwrap(), Some(fresh));
    meta.put_manifest(&manifest("p/a", 'm'), &refs, Some("v1"))
        .await
        .expect("the blob is live again");
}

/// A blob a manifest names, a tagged manifest and anything touched after
/// the cutoff survive their conditional deletes; an untagged manifest goes
/// with its references, and then its blob may go.
async fn named_and_recent_rows_are_not_swept(db: Db) {
    let meta = meta(&db).await;
    let b = blob('d', "blobs/d");
    meta.add_blob("p/a", &b).await.unwrap();
    let refs = ManifestRefs {
        blobs: vec![b.digest.clone()],
        manifests: vec![],
    };
    let tagged = manifest("p/a", 't');
    let loose = manifest("p/a", 'u');
    meta.put_manifest(&tagged, &refs, Some("v1")).await.unwrap();
    meta.put_manifest(&loose, &refs, None).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let future = now + 10;
    // Touched just now: not before a cutoff in the past.
    assert!(!meta
        .sweep_manifest("p/a", &loose.digest, now - 100)
        .await
        .unwrap());
    assert_eq!(
        meta.claim_blob_for_deletion(&b.digest, now - 100, 0)
            .await
            .unwrap(),
        None
    );
    assert!(!meta
        .sweep_manifest("p/a", &tagged.digest, future)
        .await
        .unwrap());
    assert!(meta
        .sweep_manifest("p/a", &loose.digest, future)
        .await
        .unwrap());
    assert_eq!(
        meta.claim_blob_for_deletion(&b.digest, future, 0)
            .await
            .unwrap(),
        None,
        "still named by the tagged manifest"
    );
    assert!(meta.delete_manifest("p/a", &tagged.digest).await.unwrap());
    // A push under way in the blob's repository keeps what was used within
    // the grace before it began, not what is older.
    let upload = |id: &str, at: i64| UploadRecord {
        id: id.into(),
        repo: "p/a".into(),
        owner: "alice".into(),
        size: 0,
        hash_state: vec![],
        driver_state: "{}".into(),
        created_at: at,
        updated_at: at,
    };
    meta.insert_upload(&upload("late", now + 1000), "w", 0)
        .await
        .unwrap();
    let gone = meta
        .claim_blob_for_deletion(&b.digest, future, 10)
        .await
        .unwrap();
    assert_eq!(
        gone,
        Some("blobs/d".into()),
        "used long before the push began"
    );
    meta.forget_blob(&b.digest).await.unwrap();
    meta.add_blob("p/a", &b).await.unwrap();
    meta.insert_upload(&upload("now", now), "w", 0)
        .await
        .unwrap();
    assert_eq!(
        meta.claim_blob_for_deletion(&b.digest, future + 10, 10)
            .await
            .unwrap(),
        None,
        "used just before a push began"
    );
}

/// The manifest, its tag and the tag list, the Image and the stream's tag
/// event land together; pushing the same image again changes nothing.
async fn a_push_by_tag_is_one_transaction_with_its_stream(db: Db) {
    let store = db.open().await;
    store
        .create(&kinds::PROJECT, Object::new("Project", "", "p"))
        .await
        .unwrap();
    let meta = RegistryStore::open(store.clone()).await.unwrap();
    let digest = format!("sha256:{}", "a".repeat(64));
    let m = ManifestRecord {
        repo: "p/app".into(),
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: b"{}".to_vec(),
        subject: None,
        artifact_type: None,
    };
    let reference = format!("r:5000/p/app@{digest}");
    for _ in 0..2 {
        let image = Object::new("Image", "", &digest);
        let event =
            podspace_api::imagestreams::push_event("v1", &digest, &reference, "r:5000/p/app");
        meta.put_tagged_manifest(&m, &ManifestRefs::default(), "v1", image, "p", "app", event)
            .await
            .unwrap();
    }
    assert_eq!(
        meta.tagged_manifest("p/app", "v1").await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(meta.tags("p/app", "", 10).await.unwrap(), ["v1"]);
    store
        .get_raw(&kinds::IMAGE, "", &digest)
        .await
        .expect("the Image is recorded");
    let stream = store
        .get_as::<podspace_api::model::ImageStream>("p", "app")
        .await
        .expect("the stream is made by the push");
    let tag = stream
        .status
        .tags
        .iter()
        .flatten()
        .find(|t| t.tag == "v1")
        .expect("tag v1");
    assert_eq!(tag.items.len(), 1, "the same image twice is one event");
    assert_eq!(tag.items[0].image, digest);
    assert!(meta.delete_tag("p/app", "v1").await.unwrap());
    assert!(meta.tags("p/app", "", 10).await.unwrap().is_empty());
}

async fn blobs_are_linked_per_repository(db: Db) {
    let meta = meta(&db).await;
    let blob = BlobRecord {
        digest: format!("sha256:{}", "b".repeat(64)),
        size: 3,
        location: "blobs/x".into(),
    };
    assert!(!meta.blob_location_used("blobs/x").await.unwrap());
    assert_eq!(
        meta.add_blob("p/a", &blob).await.unwrap(),
        Some(blob.clone())
    );
    assert!(meta.blob_location_used("blobs/x").await.unwrap());
    // A second copy of the same content: the first record wins.
    let copy = BlobRecord {
        location: "blobs/y".into(),
        ..blob.clone()
    };
    assert_eq!(
        meta.add_blob("p/a", &copy).await.unwrap(),
        Some(blob.clone())
    );
    assert_eq!(meta.repo_blob("p/b", &blob.digest).await.unwrap(), None);
    assert!(!meta.mount_blob("p/b", "p/c", &blob.digest).await.unwrap());
    assert!(meta.mount_blob("p/b", "p/a", &blob.digest).await.unwrap());
    assert_eq!(
        meta.repo_blob("p/b", &blob.digest).await.unwrap(),
        Some(blob.clone())
    );
    assert!(meta.unlink_blob("p/a", &blob.digest).await.unwrap());
    assert_eq!(meta.repo_blob("p/a", &blob.digest).await.unwrap(), None);
}

/// A database made before upload claims existed is brought up to date
/// and keeps its sessions.
async fn older_databases_gain_new_columns(db: Db) {
    sqlx::any::install_default_drivers();
    let url = if db.url.starts_with("sqlite:") {
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    let old = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE registry_uploads (
            id TEXT PRIMARY KEY, repo TEXT NOT NULL, size BIGINT NOT NULL, hash_state BYTEA NOT NULL,
            driver_state TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)"
            .replace("BYTEA", if db.url.starts_with("sqlite:") { "BLOB" } else { "BYTEA" })
            .as_str(),
    )
    .execute(&old)
    .await
    .unwrap();
    sqlx::query("INSERT INTO registry_uploads VALUES ('old', 'p/app', 3, $1, '{}', 10, 10)")
        .bind(vec![7u8])
        .execute(&old)
        .await
        .unwrap();
    old.close().await;
    let store = meta(&db).await;
    let kept = store.upload("old").await.unwrap().expect("kept");
    assert_eq!((kept.size, kept.owner.as_str()), (3, ""));
    assert!(matches!(
        store.claim_upload("old", "w", 100, 50).await.unwrap(),
        UploadClaim::Claimed(_)
    ));
}

/// One writer at a time per upload session; a save only lands under the
/// claim it was made with; caps count rows per owner.
async fn upload_sessions_are_claimed_and_fenced(db: Db) {
    let store = meta(&db).await;
    let record = UploadRecord {
        id: "u1".into(),
        repo: "p/app".into(),
        owner: "alice".into(),
        size: 0,
        hash_state: vec![1, 2, 3],
        driver_state: "{}".into(),
        created_at: 100,
        updated_at: 100,
    };
    store
        .insert_upload(&record, "replica-a", 160)
        .await
        .unwrap();
    assert_eq!(store.count_uploads("alice").await.unwrap(), (1, 1));
    assert_eq!(store.count_uploads("bob").await.unwrap(), (0, 1));
    // Held by A: B is refused until the claim lapses.
    assert_eq!(
        store
            .claim_upload("u1", "replica-b", 170, 110)
            .await
            .unwrap(),
        UploadClaim::Busy
    );
    let moved = UploadRecord {
        size: 5,
        hash_state: vec![4],
        driver_state: "{\"tail\":5}".into(),
        updated_at: 120,
        ..record.clone()
    };
    assert!(store.save_upload(&moved, "replica-a").await.unwrap());
    assert!(
        !store.save_upload(&moved, "replica-a").await.unwrap(),
        "saving released the claim"
    );
    // B continues from exactly what A saved.
    assert_eq!(
        store
            .claim_upload("u1", "replica-b", 200, 130)
            .await
            .unwrap(),
        UploadClaim::Claimed(moved.clone())
    );
    assert!(store
        .renew_upload_claim("u1", "replica-b", 260)
        .await
        .unwrap());
    assert!(!store
        .renew_upload_claim("u1", "replica-a", 260)
        .await
        .unwrap());
    // B stalls past its claim; A takes over; B's late save lands nowhere.
    assert!(matches!(
        store
            .claim_upload("u1", "replica-a", 400, 300)
            .await
            .unwrap(),
        UploadClaim::Claimed(_)
    ));
    let late = UploadRecord {
        size: 9,
        ..moved.clone()
    };
    assert!(!store.save_upload(&late, "replica-b").await.unwrap());
    assert!(!store.delete_upload("u1", "replica-b").await.unwrap());
    assert_eq!(store.upload("u1").await.unwrap().unwrap().size, 5);
    // Stale only when untouched and unheld.
    assert!(store.stale_uploads(1000, 350).await.unwrap().is_empty());
    store.release_upload("u1", "replica-a").await.unwrap();
    assert_eq!(store.stale_uploads(1000, 350).await.unwrap(), vec![moved]);
    assert!(store.stale_uploads(110, 350).await.unwrap().is_empty());
    assert!(matches!(
        store
            .claim_upload("u1", "replica-a", 400, 300)
            .await
            .unwrap(),
        UploadClaim::Claimed(_)
    ));
    assert!(store.delete_upload("u1", "replica-a").await.unwrap());
    assert_eq!(
        store
            .claim_upload("u1", "replica-b", 400, 300)
            .await
            .unwrap(),
        UploadClaim::Gone
    );
    assert_eq!(store.count_uploads("alice").await.unwrap(), (0, 0));
}
