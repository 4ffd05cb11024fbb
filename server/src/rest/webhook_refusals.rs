//! Refused webhook deliveries, kept in memory and written to the store in
//! one transaction a second. Anyone who knows a config's name can send
//! refusals as fast as the network goes; a store write each would make
//! every forged delivery cost a commit on SQLite's single writer. Per
//! config only the last [`KEEP_PER_CONFIG`] wait here (the store keeps no
//! more either), and at most [`MAX_CONFIGS`] configs wait at once; what is
//! dropped is counted in `podspace_webhook_deliveries` all the same.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use podspace_api::store::{DeliveryRecord, Store, StoreError, KEEP_PER_CONFIG};

/// Configs with refusals waiting to be written, at most.
const MAX_CONFIGS: usize = 10_000;

type Key = (String, String);

#[derive(Default)]
pub struct WebhookRefusals {
    pending: Mutex<HashMap<Key, VecDeque<DeliveryRecord>>>,
}

impl WebhookRefusals {
    /// Keeps `rec`, refused by config `ns/config`, for the next flush.
    pub fn push(&self, ns: &str, config: &str, rec: DeliveryRecord) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ns.to_string(), config.to_string());
        if pending.len() >= MAX_CONFIGS && !pending.contains_key(&key) {
            return;
        }
        let waiting = pending.entry(key).or_default();
        if waiting.len() >= KEEP_PER_CONFIG as usize {
            waiting.pop_front();
        }
        waiting.push_back(rec);
    }

    /// The refusals of `ns/config` not written yet, oldest first.
    pub fn waiting(&self, ns: &str, config: &str) -> Vec<DeliveryRecord> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .get(&(ns.to_string(), config.to_string()))
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes what waits. On failure the refusals are put back (still
    /// bounded per config) for the next try.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let rows: Vec<(String, String, DeliveryRecord)> = taken
            .into_iter()
            .flat_map(|((ns, config), recs)| {
                recs.into_iter()
                    .map(move |r| (ns.clone(), config.clone(), r))
            })
            .collect();
        match store.record_refusals(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                for (ns, config, rec) in rows {
                    self.push(&ns, &config, rec);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(n: usize) -> DeliveryRecord {
        DeliveryRecord {
            delivery: format!("github:refused-{n}"),
            provider: "github".into(),
            received_at: n as i64,
            done: true,
            code: 401,
            outcome: "refused".into(),
            build: None,
        }
    }

    #[test]
    fn bounded_per_config_newest_kept() {
        let r = WebhookRefusals::default();
        for n in 0..50 {
            r.push("p", "a", refusal(n));
        }
        r.push("p", "b", refusal(7));
        let a = r.waiting("p", "a");
        assert_eq!(a.len(), KEEP_PER_CONFIG as usize);
        assert_eq!(a[0].delivery, "github:refused-30");
        assert_eq!(a[a.len() - 1].delivery, "github:refused-49");
        assert_eq!(r.waiting("p", "b").len(), 1);
        assert!(r.waiting("q", "a").is_empty());
    }
}
