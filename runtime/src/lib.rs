//! The one controller runtime (after kube-runtime's controller): a
//! controller names the keys an event of the durable log touches; the
//! runtime follows the log from the controller's own cursor, keeps a
//! deduplicating queue of keys, calls `reconcile(key)`, requeues on request
//! and retries errors with capped backoff. Controllers run in a supervised
//! set: a panic or an error exit is logged, counted and restarted with
//! backoff, and `/readyz` says not ready while one is down. Each controller
//! holds a lease row, so on many replicas exactly one runs it and another
//! takes over within a lease period.
//!
//! Invariant: the durable cursor never passes an event whose keys have not
//! been reconciled successfully, so a crash (or a restart after a panic)
//! replays what was not done; reconcilers are idempotent.

mod controller;
mod queue;
mod runner;
mod supervisor;

pub use async_trait::async_trait;
pub use controller::{Action, Controller};
pub use queue::WorkQueue;
pub use supervisor::{ControllerStats, Supervisor};
