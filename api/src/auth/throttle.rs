//! Failed password logins slow the next ones down, counted three ways:
//!
//! | key | failures before a wait | then a wait of | at most |
//! |---|---|---|---|
//! | user at one client address | 5 | 1 s, doubling | 5 min |
//! | client address, any user | 50 | 1 s, doubling | 5 min |
//! | user, from anywhere | 20 | 1 s, doubling | 30 s |
//!
//! A throttled attempt is refused before the password is hashed (so
//! guessing costs no CPU either). An attacker guessing a user's password
//! locks out only their own address; the real user, elsewhere, waits at
//! most 30 s, and a successful login clears the user's counters. Counts are
//! forgotten 15 minutes after the last failure; the table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Policy {
    free: u32,
    cap: Duration,
}

const USER_AT_ADDRESS: Policy = Policy {
    free: 5,
    cap: Duration::from_secs(300),
};
const ADDRESS: Policy = Policy {
    free: 50,
    cap: Duration::from_secs(300),
};
const USER: Policy = Policy {
    free: 20,
    cap: Duration::from_secs(30),
};
const FORGET_AFTER: Duration = Duration::from_secs(900);
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    UserAt(String, IpAddr),
    Address(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Entry>>,
}

fn keys(user: &str, client: Option<IpAddr>) -> Vec<(Key, Policy)> {
    let mut out = vec![(Key::User(user.to_string()), USER)];
    if let Some(ip) = client {
        out.push((Key::UserAt(user.to_string(), ip), USER_AT_ADDRESS));
        out.push((Key::Address(ip), ADDRESS));
    }
    out
}

impl LoginThrottle {
    /// How long `user` from `client` must wait before trying, if at all.
    pub fn wait(&self, user: &str, client: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().ok()?;
        keys(user, client)
            .iter()
            .filter_map(|(k, _)| entries.get(k))
            .filter(|e| e.blocked_until > now)
            .map(|e| e.blocked_until - now)
            .max()
    }

    pub fn failed(&self, user: &str, client: Option<IpAddr>) {
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        for (key, policy) in keys(user, client) {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: now,
            });
            if now.duration_since(e.last) >= FORGET_AFTER {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
            if e.failures >= policy.free {
                let doublings = (e.failures - policy.free).min(20);
                let wait = Duration::from_secs(1u64 << doublings).min(policy.cap);
                e.blocked_until = now + wait;
            }
        }
    }

    /// A correct password clears the user's counters (not the address's:
    /// one valid account must not reset a sprayer's count).
    pub fn succeeded(&self, user: &str, client: Option<IpAddr>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&Key::User(user.to_string()));
            if let Some(ip) = client {
                entries.remove(&Key::UserAt(user.to_string(), ip));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_per_address_not_for_the_real_user() {
        let t = LoginThrottle::default();
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let real: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(t.wait("alice", Some(attacker)), None);
            t.failed("alice", Some(attacker));
        }
        // The fifth failure starts the wait; each further one doubles it.
        let w1 = t.wait("alice", Some(attacker)).unwrap();
        assert!(w1 <= Duration::from_secs(1) && w1 > Duration::from_millis(900));
        t.failed("alice", Some(attacker));
        assert!(t.wait("alice", Some(attacker)).unwrap() > Duration::from_secs(1));
        // Alice elsewhere is not held up (6 failures < 20 for the user).
        assert_eq!(t.wait("alice", Some(real)), None);
        // A success clears the user's counters.
        t.succeeded("alice", Some(attacker));
        assert_eq!(t.wait("alice", Some(attacker)), None);
    }

    #[test]
    fn the_user_wait_is_capped() {
        let t = LoginThrottle::default();
        for i in 0..200u32 {
            let ip: IpAddr = format!("10.1.{}.{}", i / 250, i % 250).parse().unwrap();
            t.failed("bob", Some(ip));
        }
        let w = t.wait("bob", Some("10.9.9.9".parse().unwrap())).unwrap();
        assert!(w <= Duration::from_secs(30), "{w:?}");
    }
}
