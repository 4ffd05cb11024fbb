//! The bytes of an S3 upload after its last part. Each flush writes only
//! the bytes no fragment holds yet, as an object of its own
//! (`<key>.tail.<n>`, numbers never reused, each checked by its ETag on
//! resume), so a PATCH costs one PutObject of what it brought. The process
//! also remembers the tail it saved last per session: the next request on
//! this replica continues without reading it back, and a request on
//! another replica (whose memory cannot match the stored state) reads the
//! fragments.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One tail object: `len` bytes, as S3 tagged them when written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Fragment {
    pub n: u32,
    pub len: u64,
    pub etag: String,
}

/// How many tail bytes the process keeps between requests, over all
/// sessions; beyond it the oldest are forgotten (and read back from S3 if
/// their session continues).
const RECENT_TAIL_BYTES: usize = 64 << 20;

/// Tails this process saved last, keyed by session and exact saved state.
#[derive(Default)]
pub(super) struct RecentTails {
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Entry>,
    /// Oldest first; an id whose generation no longer matches was replaced.
    order: VecDeque<(String, u64)>,
    bytes: usize,
    generation: u64,
}

struct Entry {
    state: String,
    tail: Bytes,
    generation: u64,
}

impl RecentTails {
    /// Remembers that the session `id`, saved as `state`, holds `tail`.
    pub fn remember(&self, id: &str, state: String, tail: Bytes) {
        if tail.len() > RECENT_TAIL_BYTES {
            return;
        }
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.generation += 1;
        let generation = r.generation;
        r.bytes += tail.len();
        if let Some(old) = r.by_id.insert(
            id.to_string(),
            Entry {
                state,
                tail,
                generation,
            },
        ) {
            r.bytes -= old.tail.len();
        }
        r.order.push_back((id.to_string(), generation));
        while r.bytes > RECENT_TAIL_BYTES {
            let Some((old, generation)) = r.order.pop_front() else {
                break;
            };
            if r.by_id
                .get(&old)
                .is_some_and(|e| e.generation == generation)
            {
                if let Some(e) = r.by_id.remove(&old) {
                    r.bytes -= e.tail.len();
                }
            }
        }
        // Replaced entries leave stale order slots; drop them once they
        // outnumber the live ones.
        if r.order.len() > 2 * r.by_id.len() + 64 {
            let Recent { by_id, order, .. } = &mut *r;
            order.retain(|(id, g)| by_id.get(id).is_some_and(|e| e.generation == *g));
        }
    }

    /// The tail of session `id` when this process saved exactly `state`
    /// last; forgets the session either way.
    pub fn take(&self, id: &str, state: &str) -> Option<Bytes> {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = r.by_id.remove(id)?;
        r.bytes -= e.tail.len();
        (e.state == state).then_some(e.tail)
    }

    pub fn forget(&self, id: &str) {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = r.by_id.remove(id) {
            r.bytes -= e.tail.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_returned_only_for_the_state_it_was_saved_with() {
        let recent = RecentTails::default();
        recent.remember("a", "s1".into(), Bytes::from_static(b"xy"));
        assert_eq!(recent.take("a", "s2"), None, "another state");
        assert_eq!(recent.take("a", "s1"), None, "forgotten by the miss");
        recent.remember("a", "s1".into(), Bytes::from_static(b"xy"));
        recent.remember("a", "s2".into(), Bytes::from_static(b"xyz"));
        assert_eq!(recent.take("a", "s2").as_deref(), Some(&b"xyz"[..]));
    }

    #[test]
    fn the_oldest_tails_go_first_beyond_the_budget() {
        let recent = RecentTails::default();
        let big = Bytes::from(vec![0u8; RECENT_TAIL_BYTES / 2]);
        recent.remember("a", "s".into(), big.clone());
        recent.remember("b", "s".into(), big.clone());
        recent.remember("c", "s".into(), big.clone());
        assert_eq!(recent.take("a", "s"), None);
        assert!(recent.take("b", "s").is_some());
        assert!(recent.take("c", "s").is_some());
        assert_eq!(recent.inner.lock().unwrap().bytes, 0);
    }
}
