//! The collector's queries: the reference graph it marks from, and the
//! conditional deletes that keep a sweep safe beside pushes. Every delete
//! re-checks, in its own statement, that the row was not touched since the
//! cutoff: a push that gave the row a new use either committed first (the
//! sweep skips it) or finds it claimed (and is refused or waits).

use podspace_api::store::StoreError;
use sqlx::Row;

use super::{
    insert_refs, manifest_from, ManifestRecord, ManifestRefs, RegistryStore, MANIFEST_COLUMNS,
};

/// A manifest as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcManifest {
    pub repo: String,
    pub digest: String,
    pub subject: Option<String>,
    pub size: i64,
    /// The later of its creation and its last touch (Unix seconds).
    pub at: i64,
}

/// A blob as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcBlob {
    pub digest: String,
    pub size: i64,
    pub location: String,
    pub at: i64,
    /// A previous sweep claimed it and did not finish.
    pub deleting: bool,
}

/// One reference row: `manifest` in `repo` names `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcRef {
    pub repo: String,
    pub manifest: String,
    pub digest: String,
    /// A child manifest of an index (else a blob).
    pub is_manifest: bool,
}

/// Everything marking needs, without manifest bodies.
#[derive(Debug, Clone, Default)]
pub struct GcGraph {
    pub manifests: Vec<GcManifest>,
    pub refs: Vec<GcRef>,
    /// `(repo, digest)` of every registry tag.
    pub tags: Vec<(String, String)>,
    pub blobs: Vec<GcBlob>,
    /// Blobs linked to a repository with an open upload session and used
    /// within the grace before that session opened: the push under way may
    /// be about to name them (an older blob is not kept, so a repository
    /// with pushes always in flight is still collected).
    pub uploading: Vec<String>,
}

impl RegistryStore {
    /// Manifests stored before references were recorded (only those of
    /// an older version: every write records them).
    pub async fn unrecorded_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM registry_manifests m WHERE m.refs_recorded = 0"
        ))
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(manifest_from).collect()
    }

    /// Records the references of a manifest stored without them.
    pub async fn record_refs(
        &self,
        repo: &str,
        digest: &str,
        refs: &ManifestRefs,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.writer().begin().await?;
        insert_refs(&mut tx, repo, digest, refs).await?;
        sqlx::query(
            "UPDATE registry_manifests SET refs_recorded = 1 WHERE repo = $1 AND digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The graph; `grace` (seconds) scopes what open uploads keep.
    pub async fn gc_graph(&self, grace: i64) -> Result<GcGraph, StoreError> {
        let db = self.store.reader();
        let manifests = sqlx::query(
            "SELECT repo, digest, subject, LENGTH(body), created_at, touched_at FROM registry_manifests",
        )
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            let created: i64 = r.try_get(4)?;
            let touched: i64 = r.try_get(5)?;
            Ok(GcManifest {
                repo: r.try_get(0)?,
                digest: r.try_get(1)?,
                subject: r.try_get(2)?,
                size: r.try_get::<i64, _>(3)?,
                at: created.max(touched),
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let refs = sqlx::query("SELECT repo, manifest, digest, kind FROM registry_manifest_refs")
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| {
                Ok(GcRef {
                    repo: r.try_get(0)?,
                    manifest: r.try_get(1)?,
                    digest: r.try_get(2)?,
                    is_manifest: r.try_get::<String, _>(3)? == "manifest",
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let tags = sqlx::query("SELECT repo, digest FROM registry_tags")
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let blobs = sqlx::query(
            "SELECT digest, size, location, created_at, touched_at, state FROM registry_blobs",
        )
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            let created: i64 = r.try_get(3)?;
            let touched: i64 = r.try_get(4)?;
            Ok(GcBlob {
                digest: r.try_get(0)?,
                size: r.try_get(1)?,
                location: r.try_get(2)?,
                at: created.max(touched),
                deleting: r.try_get::<String, _>(5)? != "live",
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let uploading = sqlx::query_scalar(
            "SELECT DISTINCT l.digest FROM registry_links l JOIN registry_uploads u ON u.repo = l.repo
             JOIN registry_blobs b ON b.digest = l.digest
             WHERE b.created_at >= u.created_at - $1 OR b.touched_at >= u.created_at - $1",
        )
        .bind(grace)
        .fetch_all(db)
        .await?;
        Ok(GcGraph {
            manifests,
            refs,
            tags,
            blobs,
            uploading,
        })
    }

    /// Blobs linked to `repo`.
    pub async fn linked_blobs(&self, repo: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT digest FROM registry_links WHERE repo = $1")
                .bind(repo)
                .fetch_all(self.store.reader())
                .await?,
        )
    }

    /// Deletes a manifest (and its references) unless it was touched at or
    /// after `cutoff` or a tag points at it; true if it went.
    pub async fn sweep_manifest(
        &self,
        repo: &str,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.writer().begin().await?;
        let r = sqlx::query(
            "DELETE FROM registry_manifests WHERE repo = $1 AND digest = $2
             AND created_at < $3 AND touched_at < $3
             AND NOT EXISTS (SELECT 1 FROM registry_tags t WHERE t.repo = $1 AND t.digest = $2)",
        )
        .bind(repo)
        .bind(digest)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM registry_manifest_refs WHERE repo = $1 AND manifest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims a blob for deletion: from here on nothing new may use it.
    /// Only if it is live, untouched since `cutoff`, named by no manifest
    /// and not kept by an open upload (see [`GcGraph::uploading`]; `grace`
    /// in seconds). Returns where its bytes lie.
    pub async fn claim_blob_for_deletion(
        &self,
        digest: &str,
        cutoff: i64,
        grace: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE registry_blobs SET state = 'deleting'
             WHERE digest = $1 AND state = 'live' AND created_at < $2 AND touched_at < $2
             AND NOT EXISTS (SELECT 1 FROM registry_manifest_refs r WHERE r.digest = $1)
             AND NOT EXISTS (SELECT 1 FROM registry_links l JOIN registry_uploads u ON u.repo = l.repo
                             WHERE l.digest = $1
                             AND (registry_blobs.created_at >= u.created_at - $3
                                  OR registry_blobs.touched_at >= u.created_at - $3))
             RETURNING location",
        )
        .bind(digest)
        .bind(cutoff)
        .bind(grace)
        .fetch_optional(self.store.writer())
        .await?)
    }

    /// Removes a claimed blob's row and links once its bytes are gone.
    pub async fn forget_blob(&self, digest: &str) -> Result<(), StoreError> {
        let mut tx = self.store.writer().begin().await?;
        sqlx::query("DELETE FROM registry_links WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM registry_blobs WHERE digest = $1 AND state = 'deleting'")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
