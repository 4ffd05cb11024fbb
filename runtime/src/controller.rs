//! What a controller is to the runtime.

use std::fmt::Debug;
use std::time::Duration;

use podspace_api::store::{Change, Store, StoreError};

/// After a reconcile: done until an event names the key again, or look
/// again after a while (scheduled work, waiting on something outside the
/// log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Done,
    RequeueAfter(Duration),
}

#[async_trait::async_trait]
pub trait Controller: Send + Sync + 'static {
    /// What the queue holds: one unit of reconciling (a DeploymentConfig,
    /// a BuildConfig's builds…).
    type Key: Ord + Clone + Debug + Send + Sync + 'static;

    /// The controller's name: its cursor, its lease, its metrics label.
    fn name(&self) -> &'static str;

    /// The kinds whose changes can touch a key; changes of other kinds are
    /// skipped without a call.
    fn watches(&self) -> &'static [&'static str];

    /// The keys one change touches.
    async fn keys_for(&self, store: &Store, change: &Change) -> Result<Vec<Self::Key>, StoreError>;

    /// Every key: after the log was compacted past the cursor, and at the
    /// first start.
    async fn all_keys(&self, store: &Store) -> Result<Vec<Self::Key>, StoreError>;

    async fn reconcile(&self, store: &Store, key: &Self::Key) -> Result<Action, StoreError>;

    /// Reconciles the keys that are ready together, one outcome per key in
    /// order. A controller whose keys often change together (one tag, a
    /// hundred configs) overrides it to write them in one transaction.
    async fn reconcile_many(
        &self,
        store: &Store,
        keys: &[Self::Key],
    ) -> Vec<Result<Action, StoreError>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.reconcile(store, key).await);
        }
        out
    }

    /// Work on a clock rather than on events (lease sweeps, schedules):
    /// `tick` runs every `period()` while the controller holds its lease,
    /// and the keys it returns are queued.
    fn period(&self) -> Option<Duration> {
        None
    }

    async fn tick(&self, _store: &Store) -> Result<Vec<Self::Key>, StoreError> {
        Ok(Vec::new())
    }
}
