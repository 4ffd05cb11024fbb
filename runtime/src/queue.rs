//! The deduplicating work queue: a key is queued at most once, whether
//! ready, waiting to be requeued, or waiting out an error's backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// The first retry waits this long; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Retries never wait longer than this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct WorkQueue<K: Ord + Clone> {
    ready: BTreeSet<K>,
    /// Keys waiting until a time (requeue or backoff), and the reverse map.
    delayed: BTreeMap<(Instant, u64), K>,
    due: BTreeMap<K, (Instant, u64)>,
    /// Failures in a row of each key, for its backoff.
    failures: BTreeMap<K, u32>,
    seq: u64,
}

impl<K: Ord + Clone> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            ready: BTreeSet::new(),
            delayed: BTreeMap::new(),
            due: BTreeMap::new(),
            failures: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<K: Ord + Clone> WorkQueue<K> {
    /// Queues `key` now, unless it is waiting out an error's backoff (an
    /// event does not make a failing key retry faster). A requeue that was
    /// scheduled for later is brought forward.
    pub fn add(&mut self, key: K) {
        if self.failures.contains_key(&key) && self.due.contains_key(&key) {
            return;
        }
        self.undelay(&key);
        self.ready.insert(key);
    }

    /// Queues `key` after `after` (not if it is ready sooner already).
    pub fn add_after(&mut self, key: K, after: Duration, now: Instant) {
        if self.ready.contains(&key) {
            return;
        }
        let at = now + after;
        if self.due.get(&key).is_some_and(|(t, _)| *t <= at) {
            return;
        }
        self.delay(key, at);
    }

    /// The key failed: queued again after its backoff.
    pub fn retry(&mut self, key: K, now: Instant) -> Duration {
        let n = self.failures.entry(key.clone()).or_insert(0);
        let wait = FIRST_BACKOFF
            .saturating_mul(1u32 << (*n).min(16))
            .min(MAX_BACKOFF);
        *n += 1;
        self.ready.remove(&key);
        self.delay(key, now + wait);
        wait
    }

    /// The key was reconciled: its failure count starts over.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Moves every key whose time has come to ready; returns the ready keys
    /// in order, emptying the ready set.
    pub fn take_ready(&mut self, now: Instant) -> Vec<K> {
        while let Some((&(at, seq), _)) = self.delayed.first_key_value() {
            if at > now {
                break;
            }
            if let Some(key) = self.delayed.remove(&(at, seq)) {
                self.due.remove(&key);
                self.ready.insert(key);
            }
        }
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    /// When the next delayed key comes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first_key_value().map(|((at, _), _)| *at)
    }

    /// Keys that failed and wait for a retry.
    pub fn failing(&self) -> usize {
        self.failures.len()
    }

    pub fn len(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn delay(&mut self, key: K, at: Instant) {
        self.undelay(&key);
        self.seq += 1;
        self.delayed.insert((at, self.seq), key.clone());
        self.due.insert(key, (at, self.seq));
    }

    fn undelay(&mut self, key: &K) {
        if let Some(slot) = self.due.remove(key) {
            self.delayed.remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_queued_once() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add_after("a", Duration::from_secs(5), now);
        q.add("b");
        assert_eq!(q.take_ready(now), ["a", "b"]);
        assert!(q.is_empty());
    }

    #[test]
    fn requeues_come_due_and_an_event_brings_them_forward() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        q.add_after("a", Duration::from_secs(5), now);
        q.add_after("a", Duration::from_secs(9), now);
        assert!(q.take_ready(now).is_empty());
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(5)));
        assert_eq!(q.take_ready(now + Duration::from_secs(5)), ["a"]);
        q.add_after("b", Duration::from_secs(5), now);
        q.add("b");
        assert_eq!(q.take_ready(now), ["b"]);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn failures_back_off_doubling_to_a_cap_and_events_do_not_skip_it() {
        let now = Instant::now();
        let mut q = WorkQueue::default();
        let waits: Vec<Duration> = (0..12).map(|_| q.retry("a", now)).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(waits[11], MAX_BACKOFF);
        q.add("a");
        assert!(
            q.take_ready(now).is_empty(),
            "an event waits for the backoff"
        );
        assert_eq!(q.failing(), 1);
        assert_eq!(q.take_ready(now + MAX_BACKOFF), ["a"]);
        q.succeeded(&"a");
        assert_eq!(q.failing(), 0);
        assert_eq!(q.retry("a", now), FIRST_BACKOFF, "the count starts over");
    }
}
