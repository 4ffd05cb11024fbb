//! The supervised set of controllers: each runs in its own task; a panic or
//! an error exit is logged, counted and restarted with backoff, and the set
//! is ready only while every controller runs.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podspace_api::store::{stopped, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::controller::Controller;
use crate::runner;

/// Restarts wait this long at first, doubling to `MAX_RESTART_DELAY`.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A controller that ran this long without failing starts its backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

/// What one controller is doing, for `/readyz`, metrics and tests.
#[derive(Debug, Default)]
pub struct ControllerStats {
    pub name: String,
    running: AtomicBool,
    leader: AtomicBool,
    restarts: AtomicU64,
    reconciles: AtomicU64,
    errors: AtomicU64,
    /// The durable cursor: every event up to it is done.
    cursor: AtomicI64,
    behind: AtomicI64,
    oldest_ms: AtomicI64,
    queued: AtomicI64,
}

impl ControllerStats {
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::Relaxed)
    }

    pub(crate) fn set_leader(&self, v: bool) {
        self.leader.store(v, Ordering::Relaxed);
    }

    pub(crate) fn reconciled(&self, ok: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn progress(&self, cursor: i64, behind: i64, oldest: Duration, queued: usize) {
        self.cursor.store(cursor, Ordering::Relaxed);
        self.behind.store(behind, Ordering::Relaxed);
        self.oldest_ms
            .store(oldest.as_millis() as i64, Ordering::Relaxed);
        self.queued.store(queued as i64, Ordering::Relaxed);
    }
}

#[derive(Clone, Default)]
struct Families {
    up: Family<ControllerLabel, Gauge>,
    leader: Family<ControllerLabel, Gauge>,
    restarts: Family<ControllerLabel, Counter>,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ControllerLabel, Counter>,
    behind: Family<ControllerLabel, Gauge>,
    oldest: Family<ControllerLabel, Gauge>,
    queued: Family<ControllerLabel, Gauge>,
    cursor: Family<ControllerLabel, Gauge>,
}

/// Runs controllers; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    store: Store,
    /// This replica's name in the controller leases.
    holder: String,
    lease: Duration,
    shutdown: watch::Receiver<bool>,
    controllers: Arc<Mutex<Vec<Arc<ControllerStats>>>>,
    families: Families,
}

impl Supervisor {
    /// `holder`: this replica's name in the leases (stable across its
    /// restarts); `lease`: how long a replica holds a controller without
    /// renewing; another replica takes over within it.
    pub fn new(
        store: Store,
        holder: String,
        lease: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Supervisor {
            store,
            holder,
            lease,
            shutdown,
            controllers: Arc::default(),
            families: Families::default(),
        }
    }

    /// Adds the controllers' metrics (`controller_*`, labelled by controller).
    pub fn register(&self, registry: &mut Registry) {
        let f = &self.families;
        let gauges = [
            (
                "controller_up",
                "Whether the controller's task runs (1) or waits to be restarted (0)",
                &f.up,
            ),
            (
                "controller_leader",
                "Whether this replica holds the controller's lease",
                &f.leader,
            ),
            (
                "controller_events_behind",
                "Events in the log after the controller's durable cursor",
                &f.behind,
            ),
            (
                "controller_oldest_unprocessed_seconds",
                "How long the controller has been behind the log",
                &f.oldest,
            ),
            (
                "controller_queue_depth",
                "Keys queued, waiting for a requeue or for an error's backoff",
                &f.queued,
            ),
            (
                "controller_cursor",
                "The resourceVersion up to which every event is handled",
                &f.cursor,
            ),
        ];
        for (name, help, family) in gauges {
            registry.register(name, help, family.clone());
        }
        let counters = [
            (
                "controller_restarts",
                "Restarts after a panic or an error exit",
                &f.restarts,
            ),
            ("controller_reconciles", "Keys reconciled", &f.reconciles),
            (
                "controller_reconcile_errors",
                "Reconciles that failed (retried with backoff)",
                &f.errors,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(name, help, family.clone());
        }
    }

    /// Copies the controllers' figures into the metric families (called
    /// before each scrape).
    pub fn refresh_metrics(&self) {
        let f = &self.families;
        for s in self.stats() {
            let l = ControllerLabel {
                controller: s.name.clone(),
            };
            let flag = |b: bool| i64::from(b);
            f.up.get_or_create(&l).set(flag(s.running()));
            f.leader.get_or_create(&l).set(flag(s.leader()));
            f.behind
                .get_or_create(&l)
                .set(s.behind.load(Ordering::Relaxed));
            f.oldest
                .get_or_create(&l)
                .set(s.oldest_ms.load(Ordering::Relaxed) / 1000);
            f.queued
                .get_or_create(&l)
                .set(s.queued.load(Ordering::Relaxed));
            f.cursor.get_or_create(&l).set(s.cursor());
            for (family, total) in [
                (&f.restarts, s.restarts()),
                (&f.reconciles, s.reconciles.load(Ordering::Relaxed)),
                (&f.errors, s.errors.load(Ordering::Relaxed)),
            ] {
                let c = family.get_or_create(&l);
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
        }
    }

    pub fn stats(&self) -> Vec<Arc<ControllerStats>> {
        self.controllers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// The controllers not running now (empty: ready).
    pub fn down(&self) -> Vec<String> {
        self.stats()
            .iter()
            .filter(|s| !s.running())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Starts `controller` and keeps it running until shutdown.
    pub fn spawn<C: Controller>(&self, controller: C) {
        let stats = Arc::new(ControllerStats {
            name: controller.name().to_string(),
            running: AtomicBool::new(true),
            ..Default::default()
        });
        if let Ok(mut all) = self.controllers.lock() {
            all.push(stats.clone());
        }
        let controller = Arc::new(controller);
        let this = self.clone();
        tokio::spawn(async move { this.supervise(controller, stats).await });
    }

    async fn supervise<C: Controller>(self, controller: Arc<C>, stats: Arc<ControllerStats>) {
        let name = controller.name();
        let mut delay = FIRST_RESTART_DELAY;
        let mut shutdown = self.shutdown.clone();
        loop {
            stats.running.store(true, Ordering::Relaxed);
            let started = tokio::time::Instant::now();
            let task = tokio::spawn(runner::run(
                controller.clone(),
                self.store.clone(),
                stats.clone(),
                self.holder.clone(),
                self.lease,
                self.shutdown.clone(),
            ));
            let outcome = task.await;
            if *shutdown.borrow() {
                return;
            }
            match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => {
                    tracing::warn!(controller = name, error = %e, "controller stopped on an error; restarting")
                }
                Err(e) if e.is_panic() => {
                    tracing::error!(controller = name, "controller panicked; restarting")
                }
                Err(e) => {
                    tracing::error!(controller = name, error = %e, "controller task ended; restarting")
                }
            }
            stats.running.store(false, Ordering::Relaxed);
            stats.set_leader(false);
            stats.restarts.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() >= STABLE_AFTER {
                delay = FIRST_RESTART_DELAY;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut shutdown) => return,
            }
            delay = (delay * 2).min(MAX_RESTART_DELAY);
        }
    }
}
