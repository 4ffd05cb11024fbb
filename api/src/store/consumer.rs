//! Durable consumers of the event log (the controllers): what changed
//! since a consumer's saved position. A consumer handles what it is given,
//! then saves the position, so an event may be seen twice but never missed;
//! consumers make their work idempotent.

use std::collections::BTreeSet;

use super::{Store, StoreError};

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
}
