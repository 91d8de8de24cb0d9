//! Token-bucket rate limits, per write key and per client address.
//!
//! Each bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes
//! one token or is refused with the time until the next token (the 429's `Retry-After`). Both
//! limits are off by default: the SDK sends at most a request per flush interval per tab, but a
//! shared address (a company NAT, a mobile carrier, a proxy without `--trust-proxy`) can carry
//! thousands of users, and a load test from one host would trip any default low enough to matter.
//!
//! Memory is bounded whatever the addresses: at most `max_entries` buckets. When the table is full,
//! buckets that have refilled completely are dropped (a full bucket is the same as no bucket), at
//! most once a second so a flood of new addresses cannot make every request scan the table; if it
//! is still full, new addresses share one overflow bucket. IPv6 clients are keyed by their /64
//! (what one subscriber usually gets), so an attacker cannot mint fresh buckets by walking the
//! low 64 bits.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default table bound for per-address buckets (~64 bytes each).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// How often a full table may be scanned for refilled buckets.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// A limit: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// `per_second == 0` means no limit.
    pub fn new(per_second: f64, burst: u64) -> Option<Self> {
        (per_second > 0.0).then(|| Self {
            per_second,
            burst: (burst as f64).max(1.0),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        }
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= rate.burst
    }
}

#[derive(Debug)]
struct Table<K> {
    buckets: HashMap<K, Bucket>,
    overflow: Bucket,
    last_prune: Option<Instant>,
}

/// Buckets keyed by `K`, bounded to `max_entries`.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    max_entries: usize,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate, max_entries: usize) -> Self {
        Self {
            rate,
            max_entries: max_entries.max(1),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: Bucket::full(rate, Instant::now()),
                last_prune: None,
            }),
        }
    }

    /// Takes one token from `key`'s bucket. `Err` carries the wait before a retry can pass.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = t.buckets.get_mut(key) {
            return b.take(rate, now);
        }
        if t.buckets.len() >= self.max_entries {
            let due = t
                .last_prune
                .is_none_or(|at| now.saturating_duration_since(at) >= PRUNE_INTERVAL);
            if due {
                t.last_prune = Some(now);
                t.buckets.retain(|_, b| !b.is_full(rate, now));
            }
            if t.buckets.len() >= self.max_entries {
                return t.overflow.take(rate, now);
            }
        }
        let mut b = Bucket::full(rate, now);
        let result = b.take(rate, now);
        t.buckets.insert(key.clone(), b);
        result
    }

    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bucket key of a client address: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = Limiter::new(Rate::new(2.0, 3).unwrap(), 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(&"k", t0).is_ok());
        }
        let wait = l.check(&"k", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Half a second later one token is back, then none.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(&"k", t1).is_ok());
        assert!(l.check(&"k", t1).is_err());
        // Other keys are independent.
        assert!(l.check(&"other", t1).is_ok());
        // Never more than the burst saved up.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check(&"k", later).is_ok());
        }
        assert!(l.check(&"k", later).is_err());
    }

    #[test]
    fn slow_rates_ask_for_a_long_wait() {
        let l = Limiter::new(Rate::new(0.1, 1).unwrap(), 10);
        let t0 = Instant::now();
        assert!(l.check(&1, t0).is_ok());
        assert_eq!(retry_after_secs(l.check(&1, t0).unwrap_err()), 10);
        assert!(Rate::new(0.0, 5).is_none(), "0 means off");
    }

    #[test]
    fn table_is_bounded_and_refilled_buckets_are_dropped_first() {
        let l = Limiter::new(Rate::new(1.0, 1).unwrap(), 100);
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(l.check(&i, t0).is_ok());
        }
        assert_eq!(l.len(), 100);
        // Full of empty buckets: newcomers share the overflow bucket (one token).
        assert!(l.check(&1000, t0).is_ok());
        assert!(l.check(&1001, t0).is_err());
        assert_eq!(l.len(), 100);
        // Two seconds on, every bucket has refilled: the prune frees the table.
        let t2 = t0 + Duration::from_secs(2);
        assert!(l.check(&2000, t2).is_ok());
        assert_eq!(l.len(), 1);
        // A flood of distinct keys never grows it past the bound.
        for i in 0..10_000 {
            let _ = l.check(&(10_000 + i), t2);
        }
        assert_eq!(l.len(), 100);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(
            address_key(mapped),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }
}
