//! Webhook deliveries: one row per delivery a BuildConfig received, kept
//! 24 hours (so a replayed delivery — the same provider delivery id —
//! creates one build, also across a restart) and, beyond that, the last
//! [`KEEP_PER_CONFIG`] per config for `psc describe bc`. A plain table
//! without events, like build leases.
//!
//! The row is the claim: of two copies of one delivery racing, exactly one
//! insert succeeds; the other waits for it to finish and answers the same.

use sqlx::Row;

use super::{Store, StoreError};

/// Deliveries kept per config beyond the replay window.
pub const KEEP_PER_CONFIG: i64 = 20;
/// How long a delivery id is remembered, in seconds.
pub const REPLAY_WINDOW: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// `<provider>:<id>` as the provider named it, or a generated id.
    pub delivery: String,
    pub provider: String,
    pub received_at: i64,
    /// False while the delivery is being handled.
    pub done: bool,
    /// The HTTP status it was answered with.
    pub code: i64,
    /// What came of it: `build shop-3`, why nothing was built, why refused.
    pub outcome: String,
    pub build: Option<String>,
}

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours to handle.
    Mine,
    /// Handled before: answer the same.
    Done(DeliveryRecord),
    /// Another request is handling it right now.
    InFlight,
}

fn record(r: &sqlx::any::AnyRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        delivery: r.try_get(0)?,
        provider: r.try_get(1)?,
        received_at: r.try_get(2)?,
        done: r.try_get::<i64, _>(3)? != 0,
        code: r.try_get(4)?,
        outcome: r.try_get(5)?,
        build: r.try_get::<Option<String>, _>(6)?,
    })
}

const COLUMNS: &str = "delivery, provider, received_at, done, code, outcome, build";

impl Store {
    /// Claims delivery `delivery` of config `ns/config` at `now`. A claim
    /// left unfinished for `stale_after` seconds (its handler died) is
    /// taken over; one older than the replay window is a new delivery.
    pub async fn claim_delivery(
        &self,
        ns: &str,
        config: &str,
        delivery: &str,
        provider: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<Claim, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_deliveries
               (namespace, config, delivery, provider, received_at, claimed_at, done, code, outcome)
             VALUES ($1, $2, $3, $4, $5, $5, 0, 0, 'received') ON CONFLICT DO NOTHING",
        )
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .bind(provider)
        .bind(now)
        .execute(self.write_pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Mine);
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, claimed_at FROM webhook_deliveries
             WHERE namespace = $1 AND config = $2 AND delivery = $3"
        ))
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .fetch_optional(self.read_pool())
        .await?;
        let Some(row) = row else {
            // Trimmed between the two statements: try once more next time.
            return Ok(Claim::InFlight);
        };
        let existing = record(&row)?;
        let claimed_at: i64 = row.try_get(7)?;
        let expired = existing.received_at < now - REPLAY_WINDOW;
        if existing.done && !expired {
            return Ok(Claim::Done(existing));
        }
        if !expired && claimed_at >= now - stale_after {
            return Ok(Claim::InFlight);
        }
        // Take it over, if nobody else just did.
        let taken = sqlx::query(
            "UPDATE webhook_deliveries
             SET claimed_at = $4, received_at = CASE WHEN done = 1 THEN $4 ELSE received_at END,
                 done = 0, code = 0, outcome = 'received', build = NULL
             WHERE namespace = $1 AND config = $2 AND delivery = $3 AND claimed_at = $5",
        )
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .bind(now)
        .bind(claimed_at)
        .execute(self.write_pool())
        .await?;
        Ok(if taken.rows_affected() == 1 {
            Claim::Mine
        } else {
            Claim::InFlight
        })
    }

    /// Records how a claimed delivery ended.
    pub async fn finish_delivery(
        &self,
        ns: &str,
        config: &str,
        delivery: &str,
        code: u16,
        outcome: &str,
        build: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET done = 1, code = $4, outcome = $5, build = $6
             WHERE namespace = $1 AND config = $2 AND delivery = $3",
        )
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .bind(i64::from(code))
        .bind(outcome)
        .bind(build)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// Records refused deliveries (answered at once, never replays), in one
    /// transaction: refusals are anyone's to send, so they are written in
    /// batches and only the last [`KEEP_PER_CONFIG`] per config are kept.
    pub async fn record_refusals(
        &self,
        refusals: &[(String, String, DeliveryRecord)],
    ) -> Result<(), StoreError> {
        if refusals.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_pool().begin().await?;
        let mut configs = std::collections::BTreeSet::new();
        for (ns, config, rec) in refusals {
            sqlx::query(
                "INSERT INTO webhook_deliveries
                   (namespace, config, delivery, provider, received_at, claimed_at, done, code, outcome, build)
                 VALUES ($1, $2, $3, $4, $5, $5, 1, $6, $7, NULL) ON CONFLICT DO NOTHING",
            )
            .bind(ns)
            .bind(config)
            .bind(&rec.delivery)
            .bind(&rec.provider)
            .bind(rec.received_at)
            .bind(rec.code)
            .bind(&rec.outcome)
            .execute(&mut *tx)
            .await?;
            configs.insert((ns, config));
        }
        for (ns, config) in configs {
            sqlx::query(
                "DELETE FROM webhook_deliveries
                 WHERE namespace = $1 AND config = $2 AND code = 401
                   AND delivery NOT IN (
                     SELECT delivery FROM webhook_deliveries
                     WHERE namespace = $1 AND config = $2 AND code = 401
                     ORDER BY received_at DESC, delivery DESC LIMIT $3)",
            )
            .bind(ns)
            .bind(config)
            .bind(KEEP_PER_CONFIG)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One delivery's record.
    pub async fn delivery(
        &self,
        ns: &str,
        config: &str,
        delivery: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries
             WHERE namespace = $1 AND config = $2 AND delivery = $3"
        ))
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Gives up a claim without an answer (a later copy is a new attempt).
    pub async fn release_delivery(
        &self,
        ns: &str,
        config: &str,
        delivery: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM webhook_deliveries
             WHERE namespace = $1 AND config = $2 AND delivery = $3 AND done = 0",
        )
        .bind(ns)
        .bind(config)
        .bind(delivery)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// The config's deliveries, newest first.
    pub async fn deliveries(
        &self,
        ns: &str,
        config: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE namespace = $1 AND config = $2
             ORDER BY received_at DESC, delivery DESC LIMIT $3"
        ))
        .bind(ns)
        .bind(config)
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// Removes the deliveries of configs that no longer exist, and those
    /// past the replay window (at `now`) beyond each config's last
    /// [`KEEP_PER_CONFIG`]. Run now and then, not per delivery: a row past
    /// the window is only history.
    pub async fn sweep_deliveries(&self, now: i64) -> Result<u64, StoreError> {
        let gone = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE NOT EXISTS (
               SELECT 1 FROM objects WHERE kind = 'BuildConfig'
                 AND objects.namespace = webhook_deliveries.namespace
                 AND objects.name = webhook_deliveries.config)",
        )
        .execute(self.write_pool())
        .await?;
        let old = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE (namespace, config, delivery) IN (
               SELECT namespace, config, delivery FROM (
                 SELECT namespace, config, delivery, done, received_at, ROW_NUMBER() OVER (
                   PARTITION BY namespace, config ORDER BY received_at DESC, delivery DESC) AS n
                 FROM webhook_deliveries) AS ranked
               WHERE n > $1 AND done = 1 AND received_at < $2)",
        )
        .bind(KEEP_PER_CONFIG)
        .bind(now - REPLAY_WINDOW)
        .execute(self.write_pool())
        .await?;
        Ok(gone.rows_affected() + old.rows_affected())
    }
}
