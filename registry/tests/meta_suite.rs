//! The registry's tables, on SQLite and on PostgreSQL (the store suite's
//! databases: `PODSPACE_TEST_POSTGRES_URL`, or `PODSPACE_SKIP_POSTGRES=1`).

use podspace_api::store::testing::TestDb as Db;
use podspace_api::{kinds, Object};
use podspace_registry::meta::{
    BlobRecord, ManifestRecord, RegistryStore, UploadClaim, UploadRecord,
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
);

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
        meta.put_tagged_manifest(&m, "v1", image, "p", "app", event)
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
    assert_eq!(meta.add_blob("p/a", &blob).await.unwrap(), blob);
    assert!(meta.blob_location_used("blobs/x").await.unwrap());
    // A second copy of the same content: the first record wins.
    let copy = BlobRecord {
        location: "blobs/y".into(),
        ..blob.clone()
    };
    assert_eq!(meta.add_blob("p/a", &copy).await.unwrap(), blob);
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
