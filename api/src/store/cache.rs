//! A read cache of stored objects, for SQLite only: there one process owns
//! the database file, so every write passes through this process and the
//! cache can be kept exact. (With PostgreSQL other replicas write too, and
//! reads go to the database.)
//!
//! Writers store the new state (or a tombstone) after commit, keeping the
//! entry with the larger resourceVersion. Readers that missed fill the
//! cache only if no write happened while they read the database, so a slow
//! reader can never put back a value older than a concurrent write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// What the cache may hold, counted as body and key bytes plus a fixed
/// overhead per entry. When full it starts over: a cold miss costs one
/// SQLite read, so nothing smarter is worth its bookkeeping.
const BUDGET_BYTES: usize = 8 << 20;
const ENTRY_OVERHEAD: usize = 96;

type Key = (&'static str, String, String);

#[derive(Clone)]
pub(super) enum Cached {
    Present(Arc<str>),
    Deleted,
}

pub(super) struct ObjectCache {
    map: RwLock<Entries>,
    writes: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (i64, Cached)>,
    bytes: usize,
}

fn cost(key: &Key, value: &Cached) -> usize {
    let body = match value {
        Cached::Present(b) => b.len(),
        Cached::Deleted => 0,
    };
    key.1.len() + key.2.len() + body + ENTRY_OVERHEAD
}

impl Entries {
    /// Sets `key` to `value` unless `keep` says the current entry stays.
    fn set(&mut self, key: Key, rv: i64, value: Cached, keep: impl Fn(&(i64, Cached)) -> bool) {
        if let Some(cur) = self.map.get(&key) {
            if keep(cur) {
                return;
            }
            self.bytes -= cost(&key, &cur.1);
        }
        let add = cost(&key, &value);
        if self.bytes + add > BUDGET_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += add;
        self.map.insert(key, (rv, value));
    }
}

impl ObjectCache {
    pub(super) fn new() -> Self {
        ObjectCache {
            map: RwLock::new(Entries::default()),
            writes: AtomicU64::new(0),
        }
    }

    fn key(kind: &'static str, ns: &str, name: &str) -> Key {
        (kind, ns.to_string(), name.to_string())
    }

    pub(super) fn get(&self, kind: &'static str, ns: &str, name: &str) -> Option<Cached> {
        let entries = self.map.read().ok()?;
        entries
            .map
            .get(&Self::key(kind, ns, name))
            .map(|(_, c)| c.clone())
    }

    /// Taken before a database read; see [`ObjectCache::fill`].
    pub(super) fn write_generation(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// A reader's fill after a miss: only if nothing was written meanwhile.
    pub(super) fn fill(
        &self,
        kind: &'static str,
        ns: &str,
        name: &str,
        rv: i64,
        body: Arc<str>,
        generation: u64,
    ) {
        let Ok(mut entries) = self.map.write() else {
            return;
        };
        if self.writes.load(Ordering::Acquire) != generation {
            return;
        }
        entries.set(Self::key(kind, ns, name), rv, Cached::Present(body), |_| {
            true
        });
    }

    /// A writer's update after commit.
    pub(super) fn put(&self, kind: &'static str, ns: &str, name: &str, rv: i64, value: Cached) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let Ok(mut entries) = self.map.write() else {
            return;
        };
        entries.set(Self::key(kind, ns, name), rv, value, |cur| cur.0 > rv);
    }

    /// Forgets a whole namespace (after a project's deletion).
    pub(super) fn drop_namespace(&self, ns: &str) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.map.write() {
            entries.map.retain(|k, _| k.1 != ns);
            entries.bytes = entries.map.iter().map(|(k, v)| cost(k, &v.1)).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rv_of(c: &ObjectCache) -> Option<String> {
        match c.get("ImageStream", "p", "x") {
            Some(Cached::Present(b)) => Some(b.to_string()),
            Some(Cached::Deleted) => Some("deleted".into()),
            None => None,
        }
    }

    #[test]
    fn a_slow_reader_never_overwrites_a_newer_write() {
        let c = ObjectCache::new();
        // The reader read version 1 from the database before the write of 2.
        let generation = c.write_generation();
        c.put("ImageStream", "p", "x", 2, Cached::Present(Arc::from("v2")));
        c.fill("ImageStream", "p", "x", 1, Arc::from("v1"), generation);
        assert_eq!(rv_of(&c).as_deref(), Some("v2"));
        // Even when the newer entry was dropped meanwhile.
        let generation = c.write_generation();
        c.put("ImageStream", "p", "x", 3, Cached::Deleted);
        c.drop_namespace("p");
        c.fill("ImageStream", "p", "x", 2, Arc::from("v2"), generation);
        assert_eq!(rv_of(&c), None);
        // Writers finishing out of order keep the newest.
        c.put("ImageStream", "p", "x", 5, Cached::Present(Arc::from("v5")));
        c.put("ImageStream", "p", "x", 4, Cached::Present(Arc::from("v4")));
        assert_eq!(rv_of(&c).as_deref(), Some("v5"));
        // A quiet fill is kept.
        let c = ObjectCache::new();
        let generation = c.write_generation();
        c.fill("ImageStream", "p", "x", 1, Arc::from("v1"), generation);
        assert_eq!(rv_of(&c).as_deref(), Some("v1"));
    }
}
