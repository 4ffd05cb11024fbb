//! The registry's metadata, in tables of its own in the store (`SCHEMA`);
//! `uploads.rs` holds the upload sessions.

use podspace_api::store::{Schema, Store, StoreError, Tx};
use podspace_api::Object;
use sqlx::Row;

mod gc;
mod uploads;

pub use gc::{GcBlob, GcGraph, GcManifest, GcRef};
pub use uploads::{UploadClaim, UploadRecord};

/// The registry's tables. Plain tables without events: registry
/// bookkeeping is not an API object.
pub const SCHEMA: Schema = Schema {
    tables: &[
        "CREATE TABLE IF NOT EXISTS registry_blobs (
            digest TEXT PRIMARY KEY, size BIGINT NOT NULL, location TEXT NOT NULL, created_at BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS registry_links (
            repo TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, digest))",
        "CREATE TABLE IF NOT EXISTS registry_manifests (
            repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, body {bytes} NOT NULL,
            subject TEXT, artifact_type TEXT, created_at BIGINT NOT NULL,
            PRIMARY KEY (repo, digest))",
        "CREATE INDEX IF NOT EXISTS registry_manifests_by_subject ON registry_manifests (repo, subject)",
        "CREATE TABLE IF NOT EXISTS registry_tags (
            repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at BIGINT NOT NULL,
            PRIMARY KEY (repo, tag))",
        "CREATE TABLE IF NOT EXISTS registry_uploads (
            id TEXT PRIMARY KEY, repo TEXT NOT NULL, size BIGINT NOT NULL, hash_state {bytes} NOT NULL,
            driver_state TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
        // Each repository's tags, sorted, one per line: a tag list is one row.
        "CREATE TABLE IF NOT EXISTS registry_tag_lists (repo TEXT PRIMARY KEY, tags TEXT NOT NULL)",
        // What each manifest refers to (`kind` 'blob' or 'manifest'),
        // written with it: garbage collection marks from these rows and
        // never parses a manifest again.
        "CREATE TABLE IF NOT EXISTS registry_manifest_refs (
            repo TEXT NOT NULL, manifest TEXT NOT NULL, digest TEXT NOT NULL, kind TEXT NOT NULL,
            PRIMARY KEY (repo, manifest, digest))",
        "CREATE INDEX IF NOT EXISTS registry_manifest_refs_by_digest ON registry_manifest_refs (digest)",
    ],
    added_columns: &[
        // Who opened an upload (per-user caps count rows, so they hold
        // across replicas) and which process writes to it until when.
        ("registry_uploads", "owner", "TEXT NOT NULL DEFAULT ''"),
        ("registry_uploads", "writer", "TEXT NOT NULL DEFAULT ''"),
        (
            "registry_uploads",
            "writer_until",
            "BIGINT NOT NULL DEFAULT 0",
        ),
        // When a blob or manifest was last given a new use (a push that
        // finished it again, a mount, a manifest naming it): garbage
        // collection spares what was touched within its grace period, and a
        // write that touches a row serializes with a sweep deleting it.
        ("registry_blobs", "touched_at", "BIGINT NOT NULL DEFAULT 0"),
        ("registry_manifests", "touched_at", "BIGINT NOT NULL DEFAULT 0"),
        // 'live', or 'deleting' while a sweep removes its bytes: nothing
        // new may use a blob in that state.
        ("registry_blobs", "state", "TEXT NOT NULL DEFAULT 'live'"),
        // 0 for manifests stored before `registry_manifest_refs` existed:
        // the next collection records their references first.
        (
            "registry_manifests",
            "refs_recorded",
            "INTEGER NOT NULL DEFAULT 0",
        ),
    ],
    after: &["CREATE INDEX IF NOT EXISTS registry_uploads_by_owner ON registry_uploads (owner)"],
};

/// The registry's metadata in the store: blobs and where they lie, which
/// repository may use which blob, manifests (their bytes too: at most
/// 4 MiB, so a manifest GET never touches blob storage), tags, upload
/// sessions.
#[derive(Clone)]
pub struct RegistryStore {
    store: Store,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub digest: String,
    pub size: i64,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub repo: String,
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
}

/// What a manifest needs to exist: its blobs (config, layers) and the
/// manifests an index lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRefs {
    pub blobs: Vec<String>,
    pub manifests: Vec<String>,
}

impl ManifestRefs {
    pub fn of(m: &podspace_oci::manifest::Manifest) -> ManifestRefs {
        let mut blobs: Vec<String> = m
            .required_blobs()
            .iter()
            .map(|b| b.digest.to_string())
            .collect();
        let mut manifests: Vec<String> = m
            .required_manifests()
            .iter()
            .map(|c| c.digest.to_string())
            .collect();
        blobs.sort();
        blobs.dedup();
        manifests.sort();
        manifests.dedup();
        ManifestRefs { blobs, manifests }
    }
}

/// Refusal of a manifest whose blob or child manifest is gone (never
/// pushed, or collected meanwhile); the registry answers
/// `MANIFEST_BLOB_UNKNOWN`.
fn missing(what: String) -> StoreError {
    StoreError::Rejected(podspace_api::Status::new(
        podspace_api::Reason::NotFound,
        what,
    ))
}

/// The manifest row (touched if it exists), its references and, with
/// `tag`, the registry tag pointing at it. Every blob and child manifest it
/// names is touched in the same transaction and must still be live: a
/// sweep either sees the touch and spares them, or has already claimed
/// them and this write is refused.
async fn write_manifest(
    tx: &mut Tx,
    m: &ManifestRecord,
    refs: &ManifestRefs,
    tag: Option<&str>,
) -> Result<(), StoreError> {
    let at = now();
    for d in &refs.blobs {
        let r = sqlx::query(
            "UPDATE registry_blobs SET touched_at = $1 WHERE digest = $2 AND state = 'live'",
        )
        .bind(at)
        .bind(d)
        .execute(&mut **tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(missing(format!("blob {d} is not in {}", m.repo)));
        }
    }
    for d in &refs.manifests {
        let r = sqlx::query(
            "UPDATE registry_manifests SET touched_at = $1 WHERE repo = $2 AND digest = $3",
        )
        .bind(at)
        .bind(&m.repo)
        .bind(d)
        .execute(&mut **tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(missing(format!("manifest {d} is not in {}", m.repo)));
        }
    }
    sqlx::query(
        "INSERT INTO registry_manifests (repo, digest, media_type, body, subject, artifact_type, created_at,
           touched_at, refs_recorded)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)
         ON CONFLICT (repo, digest) DO UPDATE SET touched_at = excluded.touched_at",
    )
    .bind(&m.repo)
    .bind(&m.digest)
    .bind(&m.media_type)
    .bind(&m.body)
    .bind(&m.subject)
    .bind(&m.artifact_type)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    insert_refs(tx, &m.repo, &m.digest, refs).await?;
    if let Some(tag) = tag {
        sqlx::query(
            "INSERT INTO registry_tags (repo, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        )
        .bind(&m.repo)
        .bind(tag)
        .bind(&m.digest)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        edit_tag_list(tx, &m.repo, &[tag], &[]).await?;
    }
    Ok(())
}

/// The reference rows of one manifest, a few hundred per statement (a
/// 4 MiB manifest can name thousands; statements have a parameter limit).
async fn insert_refs(
    tx: &mut Tx,
    repo: &str,
    manifest: &str,
    refs: &ManifestRefs,
) -> Result<(), StoreError> {
    let rows: Vec<(&str, &str)> = refs
        .blobs
        .iter()
        .map(|d| (d.as_str(), "blob"))
        .chain(refs.manifests.iter().map(|d| (d.as_str(), "manifest")))
        .collect();
    for chunk in rows.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, $2, ${}, ${})", 3 + 2 * i, 4 + 2 * i))
            .collect();
        let sql = format!(
            "INSERT INTO registry_manifest_refs (repo, manifest, digest, kind) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(repo).bind(manifest);
        for (digest, kind) in chunk {
            q = q.bind(*digest).bind(*kind);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds and removes tags in the repository's sorted tag list, inside the
/// transaction that changes `registry_tags`.
async fn edit_tag_list(
    tx: &mut Tx,
    repo: &str,
    add: &[&str],
    remove: &[String],
) -> Result<(), StoreError> {
    let current: Option<String> =
        sqlx::query_scalar("SELECT tags FROM registry_tag_lists WHERE repo = $1")
            .bind(repo)
            .fetch_optional(&mut **tx)
            .await?;
    let mut tags: Vec<String> = current
        .as_deref()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for t in add {
        if let Err(i) = tags.binary_search_by(|x| x.as_str().cmp(t)) {
            tags.insert(i, t.to_string());
        }
    }
    tags.retain(|t| !remove.contains(t));
    sqlx::query(
        "INSERT INTO registry_tag_lists (repo, tags) VALUES ($1, $2)
         ON CONFLICT (repo) DO UPDATE SET tags = excluded.tags",
    )
    .bind(repo)
    .bind(tags.join("\n"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn manifest_from(row: &sqlx::any::AnyRow) -> Result<ManifestRecord, StoreError> {
    Ok(ManifestRecord {
        repo: row.try_get(0)?,
        digest: row.try_get(1)?,
        media_type: row.try_get(2)?,
        body: row.try_get(3)?,
        subject: row.try_get(4)?,
        artifact_type: row.try_get(5)?,
    })
}

const MANIFEST_COLUMNS: &str = "m.repo, m.digest, m.media_type, m.body, m.subject, m.artifact_type";

impl RegistryStore {
    /// The registry's tables in `store`, created or brought up to date.
    pub async fn open(store: Store) -> Result<RegistryStore, StoreError> {
        store.ensure_schema(&SCHEMA).await?;
        Ok(RegistryStore { store })
    }

    /// A blob that `repo` may use.
    pub async fn repo_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<BlobRecord>, StoreError> {
        Ok(self
            .repo_blob_for_read(repo, digest)
            .await?
            .map(|(blob, _)| blob))
    }

    /// [`Self::repo_blob`] for a read (GET, HEAD), with when the blob was
    /// last touched: a read of a blob untouched for a while touches it
    /// ([`Self::touch_blob`]), because a client that finds a blob there may
    /// be about to name it in a manifest.
    pub async fn repo_blob_for_read(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<(BlobRecord, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT b.digest, b.size, b.location, b.created_at, b.touched_at FROM registry_links l
             JOIN registry_blobs b ON b.digest = l.digest
             WHERE l.repo = $1 AND l.digest = $2 AND b.state = 'live'",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|r| {
            let (created, touched): (i64, i64) = (r.try_get(3)?, r.try_get(4)?);
            Ok((
                BlobRecord {
                    digest: r.try_get(0)?,
                    size: r.try_get(1)?,
                    location: r.try_get(2)?,
                },
                created.max(touched),
            ))
        })
        .transpose()
    }

    /// Touches a live blob (a collection then spares it for its grace).
    pub async fn touch_blob(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE registry_blobs SET touched_at = $1 WHERE digest = $2 AND state = 'live'",
        )
        .bind(now())
        .bind(digest)
        .execute(self.store.writer())
        .await?;
        Ok(())
    }

    /// Records a verified blob and links it to `repo`. If the blob was
    /// already known, the stored record wins (touched: it has a new use)
    /// and is returned, so the caller can drop its now redundant copy.
    /// `None` while a collection is deleting that blob: the caller waits
    /// for it to finish, then adds its copy as a new blob.
    pub async fn add_blob(
        &self,
        repo: &str,
        blob: &BlobRecord,
    ) -> Result<Option<BlobRecord>, StoreError> {
        let mut tx = self.store.writer().begin().await?;
        let at = now();
        sqlx::query(
            "INSERT INTO registry_blobs (digest, size, location, created_at, touched_at, state)
             VALUES ($1, $2, $3, $4, $4, 'live')
             ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at
             WHERE registry_blobs.state = 'live'",
        )
        .bind(&blob.digest)
        .bind(blob.size)
        .bind(&blob.location)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT digest, size, location, state FROM registry_blobs WHERE digest = $1",
        )
        .bind(&blob.digest)
        .fetch_one(&mut *tx)
        .await?;
        let state: String = row.try_get(3)?;
        if state != "live" {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO registry_links (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(&blob.digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(BlobRecord {
            digest: row.try_get(0)?,
            size: row.try_get(1)?,
            location: row.try_get(2)?,
        }))
    }

    /// Links an existing blob into another repository (a cross-repository
    /// mount); false when the blob is not linked to `from` or is being
    /// collected. The blob is touched first, in the same transaction, so a
    /// sweep either spares it or has claimed it already.
    pub async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.writer().begin().await?;
        let touched = sqlx::query(
            "UPDATE registry_blobs SET touched_at = $1 WHERE digest = $2 AND state = 'live'
             AND EXISTS (SELECT 1 FROM registry_links WHERE repo = $3 AND digest = $2)",
        )
        .bind(now())
        .bind(digest)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if touched.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO registry_links (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Repositories `digest` is linked to, at most `limit`, in order (the
    /// candidates of a mount that names no `from`).
    pub async fn repos_with_blob(
        &self,
        digest: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT repo FROM registry_links WHERE digest = $1 ORDER BY repo LIMIT $2",
        )
        .bind(digest)
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?)
    }

    pub async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM registry_links WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(self.store.writer())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a manifest (touched if the same digest is there) and points
    /// `tag` at it, in one transaction. Refused (`StoreError::Rejected`,
    /// not found) when a blob or manifest of `refs` is not live.
    pub async fn put_manifest(
        &self,
        m: &ManifestRecord,
        refs: &ManifestRefs,
        tag: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.writer().begin().await?;
        write_manifest(&mut tx, m, refs, tag).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A push by tag, whole or not at all: the manifest and the registry
    /// tag, with the Image and the stream's tag event that `record` makes
    /// (`api::imagestreams::record_push`), in the store's one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_tagged_manifest<F>(
        &self,
        m: &ManifestRecord,
        refs: &ManifestRefs,
        tag: &str,
        image: Object,
        stream_ns: &str,
        stream_name: &str,
        record: F,
    ) -> Result<(), StoreError>
    where
        F: Fn(&mut Object) + Send,
    {
        // The step outlives any borrow the store could name: it owns its rows.
        let (m, refs, tag) = (m.clone(), refs.clone(), tag.to_string());
        self.store
            .record_image_with(image, stream_ns, stream_name, record, move |tx| {
                Box::pin(async move { write_manifest(tx, &m, &refs, Some(&tag)).await })
            })
            .await
    }

    /// Whether a registry blob lies at `location` (then build input bytes
    /// there must not be deleted with the input).
    pub async fn blob_location_used(&self, location: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registry_blobs WHERE location = $1")
            .bind(location)
            .fetch_one(self.store.reader())
            .await?;
        Ok(n > 0)
    }

    pub async fn manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {MANIFEST_COLUMNS} FROM registry_manifests m WHERE m.repo = $1 AND m.digest = $2"))
            .bind(repo)
            .bind(digest)
            .fetch_optional(self.store.reader())
            .await?;
        row.as_ref().map(manifest_from).transpose()
    }

    pub async fn tagged_manifest(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM registry_tags t JOIN registry_manifests m ON m.repo = t.repo AND m.digest = t.digest
             WHERE t.repo = $1 AND t.tag = $2"
        ))
        .bind(repo)
        .bind(tag)
        .fetch_optional(self.store.reader())
        .await?;
        row.as_ref().map(manifest_from).transpose()
    }

    /// Deletes a manifest and every tag pointing at it.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.writer().begin().await?;
        let gone: Vec<String> =
            sqlx::query_scalar("SELECT tag FROM registry_tags WHERE repo = $1 AND digest = $2")
                .bind(repo)
                .bind(digest)
                .fetch_all(&mut *tx)
                .await?;
        if !gone.is_empty() {
            edit_tag_list(&mut tx, repo, &[], &gone).await?;
        }
        sqlx::query("DELETE FROM registry_tags WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM registry_manifests WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM registry_manifest_refs WHERE repo = $1 AND manifest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.writer().begin().await?;
        let r = sqlx::query("DELETE FROM registry_tags WHERE repo = $1 AND tag = $2")
            .bind(repo)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        edit_tag_list(&mut tx, repo, &[], &[tag.to_string()]).await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Tags of `repo` in lexical order after `last`, at most `n`.
    pub async fn tags(&self, repo: &str, last: &str, n: i64) -> Result<Vec<String>, StoreError> {
        let list: Option<String> =
            sqlx::query_scalar("SELECT tags FROM registry_tag_lists WHERE repo = $1")
                .bind(repo)
                .fetch_optional(self.store.reader())
                .await?;
        Ok(list
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter(|t| *t > last)
            .take(n.max(0) as usize)
            .map(str::to_string)
            .collect())
    }

    /// Repositories holding at least one manifest, in lexical order after `last`.
    pub async fn repositories(&self, last: &str, n: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT repo FROM registry_manifests WHERE repo > $1 ORDER BY repo LIMIT $2",
        )
        .bind(last)
        .bind(n)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }

    /// Whether `repo` holds any manifest.
    pub async fn has_repository(&self, repo: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM registry_manifests WHERE repo = $1 LIMIT 1")
                .bind(repo)
                .fetch_optional(self.store.reader())
                .await?
                .is_some(),
        )
    }

    /// Manifests of `repo` whose `subject` is `digest`.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Vec<ManifestRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM registry_manifests m WHERE m.repo = $1 AND m.subject = $2 ORDER BY m.digest"
        ))
        .bind(repo)
        .bind(digest)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(manifest_from).collect()
    }
}
