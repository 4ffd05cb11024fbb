//! One controller's loop: hold the lease, read the log from the cursor,
//! map changes to keys, reconcile what is ready, save the cursor up to the
//! oldest change whose keys are not done, wait.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use podspace_api::store::{ChangeWaiter, Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::controller::{Action, Controller};
use crate::queue::WorkQueue;
use crate::supervisor::ControllerStats;

/// Changes read per query.
const BATCH: i64 = 1000;
/// Keys handed to one `reconcile_many`.
const RECONCILE_BATCH: usize = 256;
/// The first keys of a burst go in a small batch of their own: one tag
/// watched by a hundred configs shows its first firing after a small
/// commit rather than after the whole fan-out's, for one commit more.
const FIRST_BATCH: usize = 8;
/// How often the log is looked at without a local commit (other
/// replicas' writes).
const POLL: Duration = Duration::from_millis(500);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs until shutdown (`Ok`) or a store error (`Err`: the supervisor
/// restarts it).
pub(crate) async fn run<C: Controller>(
    controller: Arc<C>,
    store: Store,
    stats: Arc<ControllerStats>,
    holder: String,
    lease: Duration,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut runner = Runner {
        controller,
        store: store.clone(),
        stats,
        holder,
        lease,
        state: None,
    };
    let result = runner.run(shutdown).await;
    if runner.state.is_some() {
        let name = runner.controller.name();
        if let Err(e) = store.release_controller_lease(name, &runner.holder).await {
            tracing::info!(controller = name, error = %e, "releasing the controller lease");
        }
    }
    result
}

struct Runner<C: Controller> {
    controller: Arc<C>,
    store: Store,
    stats: Arc<ControllerStats>,
    holder: String,
    lease: Duration,
    /// While this replica holds the lease.
    state: Option<Leading<C::Key>>,
}

struct Leading<K: Ord + Clone> {
    queue: WorkQueue<K>,
    /// Every event up to here has been mapped to keys.
    read: i64,
    /// Every event up to here is done (the durable cursor).
    saved: i64,
    /// Each queued key's oldest change not yet reconciled.
    oldest: BTreeMap<K, i64>,
    lease_until: Instant,
    last_tick: Option<Instant>,
    behind_since: Option<Instant>,
}

impl<C: Controller> Runner<C> {
    async fn run(&mut self, shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        let mut waiter = ChangeWaiter::new(&self.store, shutdown.clone(), POLL);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if self.hold_lease().await? {
                self.pass().await?;
            }
            let wake = self.next_wake();
            tokio::select! {
                more = waiter.wait() => if !more { return Ok(()) },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Takes, keeps or loses the lease; true while this replica leads.
    async fn hold_lease(&mut self) -> Result<bool, StoreError> {
        let now = Instant::now();
        if let Some(s) = &self.state {
            if now + self.lease / 2 < s.lease_until {
                return Ok(true);
            }
        }
        let name = self.controller.name();
        let lease_ms = self.lease.as_millis() as i64;
        let at = now_ms();
        let held = self
            .store
            .hold_controller_lease(name, &self.holder, at, at + lease_ms)
            .await?;
        self.stats.set_leader(held);
        if !held {
            if self.state.take().is_some() {
                tracing::info!(controller = name, "lease lost to another replica");
            }
            return Ok(false);
        }
        match &mut self.state {
            Some(s) => s.lease_until = now + self.lease,
            None => {
                tracing::info!(controller = name, "leading");
                self.state = Some(self.start(now + self.lease).await?);
            }
        }
        Ok(true)
    }

    /// Where a new leader starts: the saved cursor, or (at the very first
    /// start) every key and the log's current end.
    async fn start(&self, lease_until: Instant) -> Result<Leading<C::Key>, StoreError> {
        let name = self.controller.name();
        let saved = self.store.consumer_position(name).await?;
        let mut queue = WorkQueue::default();
        let mut read = saved;
        let mut oldest = BTreeMap::new();
        if saved == 0 {
            read = self.store.current_rv().await?;
            // Until every key is done the cursor stays where it is: a
            // crash before then lists them all again.
            for k in self.controller.all_keys(&self.store).await? {
                oldest.insert(k.clone(), saved + 1);
                queue.add(k);
            }
        }
        Ok(Leading {
            queue,
            read,
            saved,
            oldest,
            lease_until,
            last_tick: None,
            behind_since: None,
        })
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let Some(s) = &self.state else {
            return now + self.lease / 3;
        };
        let mut wake = s.lease_until - self.lease / 2;
        if let Some(due) = s.queue.next_due() {
            wake = wake.min(due);
        }
        if let (Some(p), Some(t)) = (self.controller.period(), s.last_tick) {
            wake = wake.min(t + p);
        }
        wake.max(now)
    }

    async fn pass(&mut self) -> Result<(), StoreError> {
        let Some(mut s) = self.state.take() else {
            return Ok(());
        };
        let result = self.pass_leading(&mut s).await;
        self.state = Some(s);
        result
    }

    async fn pass_leading(&self, s: &mut Leading<C::Key>) -> Result<(), StoreError> {
        let c = &self.controller;
        let store = &self.store;
        // What changed, mapped to keys.
        loop {
            let changes = match store.changes_since(s.read, BATCH).await {
                Ok(changes) => changes,
                Err(StoreError::Gone { .. }) => {
                    // Compacted past us: every key, from the log's end.
                    let end = store.current_rv().await?;
                    for k in c.all_keys(store).await? {
                        s.oldest.entry(k.clone()).or_insert(s.saved + 1);
                        s.queue.add(k);
                    }
                    s.read = end;
                    break;
                }
                Err(e) => return Err(e),
            };
            let full = changes.len() as i64 == BATCH;
            // Each object once per batch, at its first change's position.
            let mut objects = BTreeMap::new();
            for change in changes {
                s.read = change.rv;
                if c.watches().contains(&change.kind.as_str()) {
                    let object = (
                        change.kind.clone(),
                        change.namespace.clone(),
                        change.name.clone(),
                    );
                    objects.entry(object).or_insert(change);
                }
            }
            for change in objects.values() {
                for k in c.keys_for(store, change).await? {
                    s.oldest.entry(k.clone()).or_insert(change.rv);
                    s.queue.add(k);
                }
            }
            if !full {
                break;
            }
        }
        // Clock work.
        if let Some(period) = c.period() {
            let now = Instant::now();
            if s.last_tick.is_none_or(|t| now >= t + period) {
                s.last_tick = Some(now);
                for k in c.tick(store).await? {
                    s.queue.add(k);
                }
            }
        }
        // Reconcile what is ready, together.
        let ready = s.queue.take_ready(Instant::now());
        let (head, rest) = ready.split_at(ready.len().min(FIRST_BATCH));
        let batches = std::iter::once(head)
            .filter(|h| !h.is_empty())
            .chain(rest.chunks(RECONCILE_BATCH));
        for chunk in batches {
            podspace_api::fault::panic_once(&format!("controller:{}", c.name()));
            let mut outcomes = c.reconcile_many(store, chunk).await.into_iter();
            for key in chunk {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(StoreError::Config(
                        "reconcile_many gave no outcome for this key".into(),
                    ))
                });
                self.stats.reconciled(outcome.is_ok());
                match outcome {
                    Ok(action) => {
                        s.queue.succeeded(key);
                        s.oldest.remove(key);
                        if let Action::RequeueAfter(d) = action {
                            s.queue.add_after(key.clone(), d, Instant::now());
                        }
                    }
                    Err(e) => {
                        let wait = s.queue.retry(key.clone(), Instant::now());
                        tracing::warn!(controller = c.name(), key = ?key, error = %e, retry_in = ?wait, "reconcile failed");
                    }
                }
            }
        }
        // The cursor stops before the oldest change whose key is not done.
        let safe = s
            .oldest
            .values()
            .min()
            .map_or(s.read, |rv| (rv - 1).min(s.read));
        if safe > s.saved {
            store.set_consumer_position(c.name(), safe).await?;
            s.saved = safe;
        }
        let end = store.current_rv().await?;
        let behind = (end - s.saved).max(0);
        let now = Instant::now();
        let since = match (behind, s.behind_since) {
            (0, _) => None,
            (_, Some(t)) => Some(t),
            (_, None) => Some(now),
        };
        s.behind_since = since;
        self.stats.progress(
            s.saved,
            behind,
            since.map_or(Duration::ZERO, |t| now - t),
            s.queue.len(),
        );
        Ok(())
    }
}
