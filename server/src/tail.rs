//! The event tail: follows the store's durable event log and broadcasts
//! every event, in resourceVersion order, to watchers in this process.
//! Local commits wake it at once; another replica's commits are found by a
//! periodic poll.

use std::sync::Arc;
use std::time::Duration;

use podspace_api::store::{ChangeWaiter, Event, Store, StoreError};
use tokio::sync::{broadcast, watch};

use crate::metrics::Metrics;

const POLL: Duration = Duration::from_millis(500);
const BATCH: i64 = 1000;
/// Events kept for slow watchers; one that falls further behind re-reads
/// the log, so this only trades memory for database reads.
const CHANNEL: usize = 1024;

#[derive(Clone)]
pub struct EventTail {
    tx: broadcast::Sender<Arc<Event>>,
}

impl EventTail {
    pub async fn start(
        store: Store,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<EventTail, StoreError> {
        let (tx, _) = broadcast::channel(CHANNEL);
        let mut last = store.current_rv().await?;
        let sender = tx.clone();
        let mut waiter = ChangeWaiter::new(&store, shutdown, POLL);
        tokio::spawn(async move {
            loop {
                loop {
                    match store.events_since(last, None, None, BATCH).await {
                        Ok(events) => {
                            let full = events.len() as i64 == BATCH;
                            for e in events {
                                last = e.rv;
                                store.observe_event(&e.kind);
                                metrics.events_tailed.inc();
                                // No receivers is fine: nobody is watching.
                                let _ = sender.send(Arc::new(e));
                            }
                            metrics.resource_version.set(last);
                            if !full {
                                break;
                            }
                        }
                        Err(StoreError::Gone { oldest, .. }) => {
                            tracing::warn!(
                                last,
                                oldest,
                                "event log compacted past the tail; skipping ahead"
                            );
                            last = oldest;
                            store.observe_event("ClusterRoleBinding");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the event log failed");
                            break;
                        }
                    }
                }
                if !waiter.wait().await {
                    return;
                }
            }
        });
        Ok(EventTail { tx })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
