//! Collection on a schedule, as a controller of the one runtime: its lease
//! makes it a singleton across replicas, and it runs only on the clock.

use std::time::Duration;

use podspace_api::store::{Change, Store, StoreError};
use podspace_runtime::{Action, Controller};

use super::{Collector, GcError, GcOptions};

pub struct ScheduledGc {
    pub collector: Collector,
    pub every: Duration,
    pub grace: Duration,
}

#[podspace_runtime::async_trait]
impl Controller for ScheduledGc {
    type Key = ();

    fn name(&self) -> &'static str {
        "registry-gc"
    }

    fn watches(&self) -> &'static [&'static str] {
        &[]
    }

    async fn keys_for(&self, _: &Store, _: &Change) -> Result<Vec<()>, StoreError> {
        Ok(Vec::new())
    }

    async fn all_keys(&self, _: &Store) -> Result<Vec<()>, StoreError> {
        Ok(Vec::new())
    }

    async fn reconcile(&self, _: &Store, _: &()) -> Result<Action, StoreError> {
        let opts = GcOptions {
            grace: self.grace,
            dry_run: false,
        };
        match self.collector.run(opts).await {
            Ok(r) => {
                tracing::info!(
                    manifests = r.manifests.len(),
                    blobs = r.blobs.len(),
                    freed_bytes = r.freed_bytes,
                    spared = r.spared,
                    errors = r.errors.len(),
                    elapsed_ms = r.elapsed_ms,
                    "registry garbage collected"
                );
                Ok(Action::Done)
            }
            Err(GcError::Store(e)) => Err(e),
            Err(e @ GcError::Corrupt { .. }) => {
                // Not retried in a loop: the next period tries again.
                tracing::error!(error = %e, "registry garbage collection stopped");
                Ok(Action::Done)
            }
        }
    }

    fn period(&self) -> Option<Duration> {
        Some(self.every)
    }

    async fn tick(&self, _: &Store) -> Result<Vec<()>, StoreError> {
        Ok(vec![()])
    }
}
