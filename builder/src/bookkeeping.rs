//! Build bookkeeping outside the object model: leases (which node runs a
//! build, until when), log chunks, and binary inputs. Plain tables without
//! events: a heartbeat or a log line is not an object change, and a watch
//! on builds must not see one per second.
//!
//! A lease row is the claim: its primary key is the build's uid, so of two
//! nodes (or two API replicas) racing for the same build exactly one insert
//! succeeds.

use podspace_api::store::{Schema, Store, StoreError};
use sqlx::Row;

/// The build bookkeeping tables. `{bytes}` is the backend's binary type.
pub const SCHEMA: Schema = Schema {
    tables: &[
        "CREATE TABLE IF NOT EXISTS build_leases (
            uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
            node TEXT NOT NULL, expires_at BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS build_logs (
            namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, pos BIGINT NOT NULL,
            data {bytes} NOT NULL, PRIMARY KEY (namespace, name, uid, pos))",
        "CREATE TABLE IF NOT EXISTS build_inputs (
            uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
            location TEXT NOT NULL, size BIGINT NOT NULL, digest TEXT NOT NULL, created_at BIGINT NOT NULL)",
    ],
    added_columns: &[],
    after: &[],
};

/// Build bookkeeping in the store.
#[derive(Clone)]
pub struct BuildStore {
    store: Store,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLease {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInput {
    pub uid: String,
    pub location: String,
    pub size: i64,
    pub digest: String,
}

fn lease_from(r: &sqlx::any::AnyRow) -> Result<BuildLease, StoreError> {
    Ok(BuildLease {
        uid: r.try_get(0)?,
        namespace: r.try_get(1)?,
        name: r.try_get(2)?,
        node: r.try_get(3)?,
        expires_at: r.try_get(4)?,
    })
}

impl BuildStore {
    /// The build tables in `store`, created or brought up to date.
    pub async fn open(store: Store) -> Result<BuildStore, StoreError> {
        store.ensure_schema(&SCHEMA).await?;
        Ok(BuildStore { store })
    }

    /// Claims a build for `lease.node`; false when another node holds it.
    pub async fn claim_build(&self, lease: &BuildLease) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO build_leases (uid, namespace, name, node, expires_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&lease.uid)
        .bind(&lease.namespace)
        .bind(&lease.name)
        .bind(&lease.node)
        .bind(lease.expires_at)
        .execute(self.store.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Extends the leases `node` holds on `uids`; returns the uids it still holds.
    pub async fn renew_leases(
        &self,
        node: &str,
        uids: &[String],
        expires_at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut held = Vec::new();
        for uid in uids {
            let r =
                sqlx::query("UPDATE build_leases SET expires_at = $1 WHERE uid = $2 AND node = $3")
                    .bind(expires_at)
                    .bind(uid)
                    .bind(node)
                    .execute(self.store.writer())
                    .await?;
            if r.rows_affected() == 1 {
                held.push(uid.clone());
            }
        }
        Ok(held)
    }

    pub async fn build_lease(&self, uid: &str) -> Result<Option<BuildLease>, StoreError> {
        let row = sqlx::query(
            "SELECT uid, namespace, name, node, expires_at FROM build_leases WHERE uid = $1",
        )
        .bind(uid)
        .fetch_optional(self.store.reader())
        .await?;
        row.as_ref().map(lease_from).transpose()
    }

    pub async fn build_leases(&self) -> Result<Vec<BuildLease>, StoreError> {
        let rows = sqlx::query("SELECT uid, namespace, name, node, expires_at FROM build_leases")
            .fetch_all(self.store.reader())
            .await?;
        rows.iter().map(lease_from).collect()
    }

    /// Drops a lease, only if `expires_at` is still what the caller saw (an
    /// expired lease renewed meanwhile is kept).
    pub async fn release_build(
        &self,
        uid: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let r = match expires_at {
            Some(at) => {
                sqlx::query("DELETE FROM build_leases WHERE uid = $1 AND expires_at = $2")
                    .bind(uid)
                    .bind(at)
                    .execute(self.store.writer())
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM build_leases WHERE uid = $1")
                    .bind(uid)
                    .execute(self.store.writer())
                    .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }

    /// Stores a log chunk at byte offset `pos`. Idempotent: a node retrying
    /// a chunk that was stored does not duplicate it.
    pub async fn append_build_log(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        pos: i64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO build_logs (namespace, name, uid, pos, data) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(namespace)
        .bind(name)
        .bind(uid)
        .bind(pos)
        .bind(data)
        .execute(self.store.writer())
        .await?;
        Ok(())
    }

    /// Log chunks at or after byte offset `from`, in order: `(pos, data)`.
    pub async fn build_log(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        from: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT pos, data FROM build_logs WHERE namespace = $1 AND name = $2 AND uid = $3 AND pos >= $4
             ORDER BY pos",
        )
        .bind(namespace)
        .bind(name)
        .bind(uid)
        .bind(from)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn set_build_input(
        &self,
        namespace: &str,
        name: &str,
        input: &BuildInput,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO build_inputs (uid, namespace, name, location, size, digest, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&input.uid)
        .bind(namespace)
        .bind(name)
        .bind(&input.location)
        .bind(input.size)
        .bind(&input.digest)
        .bind(chrono::Utc::now().timestamp())
        .execute(self.store.writer())
        .await?;
        Ok(())
    }

    pub async fn build_input(&self, uid: &str) -> Result<Option<BuildInput>, StoreError> {
        let row =
            sqlx::query("SELECT uid, location, size, digest FROM build_inputs WHERE uid = $1")
                .bind(uid)
                .fetch_optional(self.store.reader())
                .await?;
        row.map(|r| {
            Ok(BuildInput {
                uid: r.try_get(0)?,
                location: r.try_get(1)?,
                size: r.try_get(2)?,
                digest: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Removes the logs and leases of builds that no longer exist, and
    /// returns (and forgets) the inputs of those builds so that the caller
    /// can delete their bytes. Inputs younger than `grace` seconds are kept:
    /// their build may be about to be created.
    pub async fn sweep_build_leftovers(&self, grace: i64) -> Result<Vec<BuildInput>, StoreError> {
        // The store's `objects` table, read by its key columns (kind,
        // namespace, name): one statement instead of a list of every Build.
        let gone = "NOT EXISTS (SELECT 1 FROM objects o WHERE o.kind = 'Build'
             AND o.namespace = t.namespace AND o.name = t.name)";
        for table in ["build_logs", "build_leases"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE uid IN (SELECT t.uid FROM {table} t WHERE {gone})"
            ))
            .execute(self.store.writer())
            .await?;
        }
        let cutoff = chrono::Utc::now().timestamp() - grace;
        let rows = sqlx::query(&format!(
            "SELECT t.uid, t.location, t.size, t.digest FROM build_inputs t WHERE t.created_at < $1 AND {gone}"
        ))
        .bind(cutoff)
        .fetch_all(self.store.reader())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let input = BuildInput {
                uid: r.try_get(0)?,
                location: r.try_get(1)?,
                size: r.try_get(2)?,
                digest: r.try_get(3)?,
            };
            sqlx::query("DELETE FROM build_inputs WHERE uid = $1")
                .bind(&input.uid)
                .execute(self.store.writer())
                .await?;
            out.push(input);
        }
        Ok(out)
    }
}
