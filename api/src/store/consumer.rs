//! Durable consumers of the event log (the controllers): what changed
//! since a consumer's saved position. A consumer handles what it is given,
//! then saves the position, so an event may be seen twice but never missed;
//! consumers make their work idempotent.

use std::collections::BTreeSet;

use sqlx::Row;

use super::{Store, StoreError};

/// One change of the log without the object: what a controller maps to keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub rv: i64,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// What a consumer has to look at next.
#[derive(Debug, PartialEq, Eq)]
pub enum Pending {
    Nothing,
    /// These objects changed, each listed once as (kind, namespace, name);
    /// save `upto` once they are handled.
    Changed {
        upto: i64,
        objects: BTreeSet<(String, String, String)>,
    },
    /// The log was compacted past the consumer: look at everything, then
    /// save `upto`.
    Behind {
        upto: i64,
    },
}

impl Store {
    /// At most `limit` events after `consumer`'s position, optionally of one kind.
    pub async fn pending(
        &self,
        consumer: &str,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Pending, StoreError> {
        let cursor = self.consumer_position(consumer).await?;
        let events = match self.events_since(cursor, kind, None, limit).await {
            Ok(e) => e,
            Err(StoreError::Gone { .. }) => {
                return Ok(Pending::Behind {
                    upto: self.current_rv().await?,
                })
            }
            Err(e) => return Err(e),
        };
        let Some(upto) = events.last().map(|e| e.rv) else {
            return Ok(Pending::Nothing);
        };
        let objects = events
            .into_iter()
            .map(|e| (e.kind, e.namespace, e.name))
            .collect();
        Ok(Pending::Changed { upto, objects })
    }

    /// At most `limit` changes after `after`, oldest first, without their
    /// bodies; `Gone` when the log was compacted past `after`.
    pub async fn changes_since(&self, after: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let compacted = self.compacted_rv().await?;
        if after < compacted {
            return Err(StoreError::Gone {
                requested: after,
                oldest: compacted,
            });
        }
        let rows = sqlx::query(
            "SELECT rv, kind, namespace, name FROM events WHERE rv > $1 ORDER BY rv LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    rv: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    namespace: r.try_get(2)?,
                    name: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Takes or renews the lease `name` for `holder` until `expires_at`
    /// (ms): granted when free, expired (`now`), or already `holder`'s.
    pub async fn hold_controller_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO controller_leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3
             WHERE controller_leases.holder = $2 OR controller_leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_at)
        .bind(now)
        .execute(self.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Gives the lease up (at shutdown), so another replica takes over now.
    pub async fn release_controller_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM controller_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }
}
