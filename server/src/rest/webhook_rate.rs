//! The per-BuildConfig rate of verified webhook deliveries: a token bucket
//! per config (`--webhook-rate` per second, `--webhook-burst` at once). A
//! delivery over it is answered 429. Only verified deliveries take tokens,
//! so forged ones cannot starve a config; the map is bounded by dropping
//! full buckets (a full bucket is the same as none).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before full ones are dropped.
const MAX_BUCKETS: usize = 10_000;

pub struct WebhookRate {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl WebhookRate {
    pub fn new(per_second: f64, burst: u32) -> WebhookRate {
        WebhookRate {
            per_second,
            burst: f64::from(burst),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token of config `ns/name`; `Err(seconds)` until the next one.
    pub fn take(&self, ns: &str, name: &str) -> Result<(), f64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let refill = |tokens: f64, at: Instant| {
            (tokens + now.duration_since(at).as_secs_f64() * self.per_second).min(self.burst)
        };
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, (tokens, at)| refill(*tokens, *at) < self.burst);
        }
        let key = (ns.to_string(), name.to_string());
        let (tokens, at) = buckets.get(&key).copied().unwrap_or((self.burst, now));
        let tokens = refill(tokens, at);
        if tokens < 1.0 {
            buckets.insert(key, (tokens, now));
            return Err((1.0 - tokens) / self.per_second);
        }
        buckets.insert(key, (tokens - 1.0, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_config() {
        let rate = WebhookRate::new(0.001, 3);
        for _ in 0..3 {
            assert!(rate.take("p", "a").is_ok());
        }
        let wait = rate.take("p", "a").unwrap_err();
        assert!(wait > 100.0, "{wait}");
        assert!(
            rate.take("p", "b").is_ok(),
            "another config has its own bucket"
        );
    }
}
