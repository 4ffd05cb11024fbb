//! Upload sessions. A request works on a session only while it holds the
//! session's claim (`writer` until `writer_until`), and saves only under
//! that claim: two requests for one session, on one replica or two, never
//! write its bytes at the same time, and each continues from the state the
//! last one saved.

use podspace_api::store::StoreError;
use sqlx::Row;

use super::RegistryStore;

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

impl RegistryStore {
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
        .execute(self.store.writer())
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
        .fetch_one(self.store.writer())
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
        .fetch_optional(self.store.writer())
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
        .execute(self.store.writer())
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
        .execute(self.store.writer())
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
        .execute(self.store.writer())
        .await?;
        Ok(())
    }

    /// A session as last saved.
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM registry_uploads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.store.writer())
        .await?;
        row.as_ref().map(upload_from).transpose()
    }

    /// Deletes a session `writer` holds the claim of.
    pub async fn delete_upload(&self, id: &str, writer: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM registry_uploads WHERE id = $1 AND writer = $2")
            .bind(id)
            .bind(writer)
            .execute(self.store.writer())
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
        .fetch_all(self.store.writer())
        .await?;
        rows.iter().map(upload_from).collect()
    }
}
