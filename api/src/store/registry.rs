//! Registry metadata: blobs and where they lie, which repository may use
//! which blob, manifests (their bytes too: at most 4 MiB, and a manifest
//! GET never touches blob storage), tags, upload sessions, signing keys.
//! Plain tables without events: registry bookkeeping is not an API object.

use sqlx::Row;

use super::cache::Cached;
use super::{
    batch, insert_new, merge_update, next_rvs, now_rfc3339, write_modified, Store, StoreError,
    UpdateScope,
};
use crate::Object;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub repo: String,
    /// The user who opened it (per-user caps count these).
    pub owner: String,
    /// Bytes durably written so far.
    pub size: i64,
    /// The digest state at `size` bytes (see the registry's digest module).
    pub hash_state: Vec<u8>,
    /// The storage driver's own state (JSON).
    pub driver_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What claiming an upload session found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadClaim {
    /// Claimed: the state to continue from.
    Claimed(UploadRecord),
    /// Another writer holds an unexpired claim.
    Busy,
    /// No such session (finished, cancelled or expired).
    Gone,
}

const UPLOAD_COLUMNS: &str =
    "id, repo, owner, size, hash_state, driver_state, created_at, updated_at";

fn upload_from(r: &sqlx::any::AnyRow) -> Result<UploadRecord, StoreError> {
    Ok(UploadRecord {
        id: r.try_get(0)?,
        repo: r.try_get(1)?,
        owner: r.try_get(2)?,
        size: r.try_get(3)?,
        hash_state: r.try_get(4)?,
        driver_state: r.try_get(5)?,
        created_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    })
}

/// The manifest row and, with `tag`, the registry tag pointing at it.
async fn write_manifest(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: &ManifestRecord,
    tag: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registry_manifests (repo, digest, media_type, body, subject, artifact_type, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&m.repo)
    .bind(&m.digest)
    .bind(&m.media_type)
    .bind(&m.body)
    .bind(&m.subject)
    .bind(&m.artifact_type)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    if let Some(tag) = tag {
        sqlx::query(
            "INSERT INTO registry_tags (repo, tag, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        )
        .bind(&m.repo)
        .bind(tag)
        .bind(&m.digest)
        .bind(now())
        .execute(&mut **tx)
        .await?;
        edit_tag_list(tx, &m.repo, &[tag], &[]).await?;
    }
    Ok(())
}

/// Adds and removes tags in the repository's sorted tag list, inside the
/// transaction that changes `registry_tags`.
async fn edit_tag_list(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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

fn now() -> i64 {
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

impl Store {
    /// A blob that `repo` may use.
    pub async fn repo_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<BlobRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT b.digest, b.size, b.location FROM registry_links l JOIN registry_blobs b ON b.digest = l.digest
             WHERE l.repo = $1 AND l.digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(self.read_pool())
        .await?;
        row.map(|r| {
            Ok(BlobRecord {
                digest: r.try_get(0)?,
                size: r.try_get(1)?,
                location: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Records a verified blob and links it to `repo`. If the blob was
    /// already known, the stored record wins and is returned, so the caller
    /// can drop its now redundant copy.
    pub async fn add_blob(&self, repo: &str, blob: &BlobRecord) -> Result<BlobRecord, StoreError> {
        let mut tx = self.write_pool().begin().await?;
        sqlx::query("INSERT INTO registry_blobs (digest, size, location, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(&blob.digest)
            .bind(blob.size)
            .bind(&blob.location)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let row =
            sqlx::query("SELECT digest, size, location FROM registry_blobs WHERE digest = $1")
                .bind(&blob.digest)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO registry_links (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(&blob.digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(BlobRecord {
            digest: row.try_get(0)?,
            size: row.try_get(1)?,
            location: row.try_get(2)?,
        })
    }

    /// Links an existing blob into another repository (a cross-repository
    /// mount); false when the blob is not linked to `from`.
    pub async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO registry_links (repo, digest) SELECT $1, digest FROM registry_links WHERE repo = $2 AND digest = $3
             ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(from)
        .bind(digest)
        .execute(self.write_pool())
        .await?;
        if r.rows_affected() > 0 {
            return Ok(true);
        }
        Ok(self.repo_blob(repo, digest).await?.is_some()
            && self.repo_blob(from, digest).await?.is_some())
    }

    pub async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM registry_links WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a manifest (a no-op if the same digest is there) and points
    /// `tag` at it, in one transaction.
    pub async fn put_manifest(
        &self,
        m: &ManifestRecord,
        tag: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_pool().begin().await?;
        write_manifest(&mut tx, m, tag).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A push by tag, whole or not at all (invariant 1): the manifest, the
    /// registry tag, the Image object (if new) and the image stream's tag
    /// event (`record` edits the stream's status; the stream is created if
    /// missing), with their events, in one transaction. A crash or an error
    /// at any point leaves either all of it or none.
    pub async fn put_tagged_manifest<F>(
        &self,
        m: &ManifestRecord,
        tag: &str,
        mut image: Object,
        stream_ns: &str,
        stream_name: &str,
        record: F,
    ) -> Result<(), StoreError>
    where
        F: Fn(&mut Object) + Send,
    {
        let image_kind = &crate::kinds::IMAGE;
        let stream_kind = &crate::kinds::IMAGE_STREAM;
        let mut tx = self.begin_write().await?;
        let first_rv = next_rvs(&mut tx, 2).await?;
        write_manifest(&mut tx, m, Some(tag)).await?;
        crate::fault::point("push:after-registry-tag");
        let now = now_rfc3339();
        let projects =
            batch::existing_projects(&mut tx, &std::collections::BTreeSet::from([stream_ns]))
                .await?;
        let mut written: Vec<(&'static str, String, String, i64, String)> = Vec::new();
        let image_rv = first_rv + 1;
        let indexes = &self.inner.indexes;
        match insert_new(
            &mut tx, indexes, image_kind, &mut image, image_rv, &now, &projects,
        )
        .await
        {
            Ok(body) => written.push((
                image_kind.kind,
                String::new(),
                image.metadata.name.clone(),
                image_rv,
                body,
            )),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        crate::fault::point("push:after-image");
        let stream_rv = first_rv + 2;
        let row = sqlx::query(
            "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(stream_kind.kind)
        .bind(stream_ns)
        .bind(stream_name)
        .fetch_optional(&mut *tx)
        .await?;
        let (new, changed) = match row {
            Some(row) => {
                let stored_rv: i64 = row.try_get(0)?;
                let old: Object = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
                let mut new = old.clone();
                record(&mut new);
                let new = merge_update(stream_kind, &old, new, UpdateScope::Status, stream_rv);
                let unchanged = merge_update(
                    stream_kind,
                    &old,
                    new.clone(),
                    UpdateScope::Status,
                    stored_rv,
                ) == old;
                (Some(new), !unchanged)
            }
            None => (None, true),
        };
        let body = match new {
            Some(new) if changed => Some(
                write_modified(
                    &mut tx,
                    indexes,
                    stream_kind,
                    stream_ns,
                    stream_name,
                    stream_rv,
                    None,
                    &new,
                )
                .await?,
            ),
            Some(_) => None,
            None => {
                let mut fresh = Object::new("ImageStream", stream_ns, stream_name)
                    .with("spec", serde_json::json!({}));
                fresh.metadata.generation = 1;
                record(&mut fresh);
                Some(
                    insert_new(
                        &mut tx,
                        indexes,
                        stream_kind,
                        &mut fresh,
                        stream_rv,
                        &now,
                        &projects,
                    )
                    .await?,
                )
            }
        };
        if let Some(body) = body {
            written.push((
                stream_kind.kind,
                stream_ns.to_string(),
                stream_name.to_string(),
                stream_rv,
                body,
            ));
        }
        crate::fault::point("push:before-commit");
        let last = written.iter().map(|w| w.3).max().unwrap_or(first_rv);
        let kinds: Vec<&str> = written.iter().map(|w| w.0).collect();
        self.commit(tx, last, &kinds).await?;
        for (k, ns, name, rv, body) in written {
            self.cache_put(
                k,
                &ns,
                &name,
                rv,
                Cached::Present(std::sync::Arc::from(body)),
            );
        }
        Ok(())
    }

    pub async fn manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {MANIFEST_COLUMNS} FROM registry_manifests m WHERE m.repo = $1 AND m.digest = $2"))
            .bind(repo)
            .bind(digest)
            .fetch_optional(self.read_pool())
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
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(manifest_from).transpose()
    }

    /// Deletes a manifest and every tag pointing at it.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_pool().begin().await?;
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
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_pool().begin().await?;
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
                .fetch_optional(self.read_pool())
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
        .fetch_all(self.read_pool())
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
                .fetch_optional(self.read_pool())
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
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(manifest_from).collect()
    }

    // Upload sessions. A request works on a session only while it holds
    // the session's claim (`writer` until `writer_until`), and saves only
    // under that claim: two requests for one session, on one replica or two,
    // never write its bytes at the same time, and each continues from the
    // state the last one saved.

    /// Records a new session, claimed by `writer` until `until`.
    pub async fn insert_upload(
        &self,
        u: &UploadRecord,
        writer: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO registry_uploads (id, repo, owner, size, hash_state, driver_state,
               created_at, updated_at, writer, writer_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.repo)
        .bind(&u.owner)
        .bind(u.size)
        .bind(&u.hash_state)
        .bind(&u.driver_state)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(writer)
        .bind(until)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// Open sessions opened by `owner`, and open sessions in all.
    pub async fn count_uploads(&self, owner: &str) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM registry_uploads WHERE owner = $1),
                    (SELECT COUNT(*) FROM registry_uploads)",
        )
        .bind(owner)
        .fetch_one(self.write_pool())
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Claims session `id` for `writer` until `until`, unless another
    /// writer's claim is still valid at `now`.
    pub async fn claim_upload(
        &self,
        id: &str,
        writer: &str,
        until: i64,
        now: i64,
    ) -> Result<UploadClaim, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE registry_uploads SET writer = $2, writer_until = $3
             WHERE id = $1 AND (writer = '' OR writer = $2 OR writer_until < $4)
             RETURNING {UPLOAD_COLUMNS}"
        ))
        .bind(id)
        .bind(writer)
        .bind(until)
        .bind(now)
        .fetch_optional(self.write_pool())
        .await?;
        if let Some(row) = row {
            return Ok(UploadClaim::Claimed(upload_from(&row)?));
        }
        Ok(if self.upload(id).await?.is_some() {
            UploadClaim::Busy
        } else {
            UploadClaim::Gone
        })
    }

    /// Extends `writer`'s claim; false when it no longer holds it.
    pub async fn renew_upload_claim(
        &self,
        id: &str,
        writer: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE registry_uploads SET writer_until = $3 WHERE id = $1 AND writer = $2",
        )
        .bind(id)
        .bind(writer)
        .bind(until)
        .execute(self.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Saves a session's new state and releases the claim, if `writer`
    /// still holds it (false: nothing was saved).
    pub async fn save_upload(&self, u: &UploadRecord, writer: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE registry_uploads SET size = $3, hash_state = $4, driver_state = $5,
               updated_at = $6, writer = '', writer_until = 0
             WHERE id = $1 AND writer = $2",
        )
        .bind(&u.id)
        .bind(writer)
        .bind(u.size)
        .bind(&u.hash_state)
        .bind(&u.driver_state)
        .bind(u.updated_at)
        .execute(self.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Gives up `writer`'s claim without changing the session.
    pub async fn release_upload(&self, id: &str, writer: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE registry_uploads SET writer = '', writer_until = 0 WHERE id = $1 AND writer = $2",
        )
        .bind(id)
        .bind(writer)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// A session as last saved.
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM registry_uploads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.write_pool())
        .await?;
        row.as_ref().map(upload_from).transpose()
    }

    /// Deletes a session `writer` holds the claim of.
    pub async fn delete_upload(&self, id: &str, writer: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM registry_uploads WHERE id = $1 AND writer = $2")
            .bind(id)
            .bind(writer)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sessions last saved before `before` that nobody holds at `now`
    /// (unix seconds).
    pub async fn stale_uploads(
        &self,
        before: i64,
        now: i64,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM registry_uploads
             WHERE updated_at < $1 AND (writer = '' OR writer_until < $2)"
        ))
        .bind(before)
        .bind(now)
        .fetch_all(self.write_pool())
        .await?;
        rows.iter().map(upload_from).collect()
    }

    /// The value stored under `name`, storing `candidate` if there is none
    /// (the first replica's value wins).
    pub async fn server_value(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(self.write_pool())
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_one(self.write_pool())
                .await?,
        )
    }

    /// The value under `name`, if any (e.g. a key kept in the store by an
    /// older version, to be moved out).
    pub async fn stored_server_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(self.write_pool())
                .await?,
        )
    }

    pub async fn delete_server_value(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM server_keys WHERE name = $1")
            .bind(name)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }
}
