//! How every follower of the event log idles: until this process commits
//! something, a poll interval passes (for other replicas' commits), or the
//! service shuts down.

use std::time::Duration;

use tokio::sync::watch;

use super::Store;

pub struct ChangeWaiter {
    commits: watch::Receiver<i64>,
    shutdown: watch::Receiver<bool>,
    poll: Duration,
}

/// Resolves once `shutdown` turns true. (`wait_for`'s guard is dropped
/// here: held across an await it would make a spawned task non-`Send`.)
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl ChangeWaiter {
    pub fn new(store: &Store, shutdown: watch::Receiver<bool>, poll: Duration) -> Self {
        ChangeWaiter {
            commits: store.subscribe_commits(),
            shutdown,
            poll,
        }
    }

    /// Waits for the next reason to look at the log; false once shutting down.
    pub async fn wait(&mut self) -> bool {
        if *self.shutdown.borrow() {
            return false;
        }
        tokio::select! {
            _ = self.commits.changed() => true,
            _ = tokio::time::sleep(self.poll) => true,
            _ = stopped(&mut self.shutdown) => false,
        }
    }
}
