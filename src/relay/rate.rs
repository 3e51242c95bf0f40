//! Token buckets for rate limits (per connection and per agent).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::identity::AgentId;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-agent publish buckets shared by all connections. Idle full buckets are forgotten when
/// the map grows past a bound, so memory stays proportional to recently active agents.
#[derive(Debug)]
pub struct AgentBuckets {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<AgentId, TokenBucket>>,
}

const PRUNE_ABOVE: usize = 100_000;

impl AgentBuckets {
    /// Buckets of `rate` per second with `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        AgentBuckets {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `agent`'s bucket.
    pub fn take(&self, agent: &AgentId, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                let idle = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens + idle * rate < burst
            });
        }
        buckets
            .entry(*agent)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill_at_their_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2.0, start);
        assert!(bucket.take(start));
        assert!(bucket.take(start));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
    }
}
