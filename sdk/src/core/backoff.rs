//! Delivery decisions: what a response status means, and when to try again.
//!
//! Exponential backoff with full jitter (delay uniformly random in `[0, min(cap, base·2^n)]`,
//! as in the AWS architecture note) so a fleet of browsers that lost the ingest at the same moment
//! does not come back in lock-step; `Retry-After` is a floor on top of that. The random input is
//! passed in, so the schedule is tested exactly.

use super::queue::Outcome;

pub const BASE_MS: u64 = 1_000;
pub const CAP_MS: u64 = 60_000;
/// Longest `Retry-After` we honour: a hostile or broken server must not park events for days.
pub const MAX_RETRY_AFTER_MS: u64 = 600_000;

/// What to do with a batch after its response (`status` 0 = network error / no response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: acknowledged.
    Ack,
    /// 400 (the ingest says it will never accept it), 401/403 (bad key or origin) and other
    /// 4xx: resending cannot help.
    Drop,
    /// 413: too large, split.
    Split,
    /// 408/429/5xx/network: try again later.
    Retry,
}

pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Ack,
        413 => Verdict::Split,
        0 | 408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Drop,
    }
}

impl Verdict {
    /// What the queue does with the batch.
    pub fn outcome(self) -> Outcome {
        match self {
            Verdict::Ack | Verdict::Drop => Outcome::Remove,
            Verdict::Split => Outcome::Split,
            Verdict::Retry => Outcome::Keep,
        }
    }
}

/// Delay before retry number `attempt` (0 for the first retry). `random` is uniform over u32.
pub fn delay_ms(attempt: u32, random: u32, retry_after_ms: Option<u64>) -> u64 {
    let ceiling = BASE_MS.saturating_mul(1u64 << attempt.min(20)).min(CAP_MS);
    let jitter = ceiling * random as u64 / u32::MAX as u64;
    jitter.max(retry_after_ms.unwrap_or(0).min(MAX_RETRY_AFTER_MS))
}

/// Parses a `Retry-After` given in seconds (`"120"`); the HTTP-date form is left to the caller.
/// No trimming: `Headers.get` returns values with the surrounding whitespace already removed
/// (Fetch standard, header value normalization).
pub fn parse_retry_after_seconds(v: &str) -> Option<u64> {
    super::json::parse_u64(v).map(|s| s.saturating_mul(1000))
}

/// Retry state of the queue: consecutive failures and the time before which we must not send.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempt: u32,
    pub until: u64,
    /// The server asked for the wait (`Retry-After`): even `flush()` respects it.
    pub server_asked: bool,
}

impl Backoff {
    /// Records the verdict at `now`; returns the delay when a retry must wait.
    pub fn record(
        &mut self,
        verdict: Verdict,
        now: u64,
        random: u32,
        retry_after_ms: Option<u64>,
    ) -> Option<u64> {
        match verdict {
            Verdict::Retry => {
                let d = delay_ms(self.attempt, random, retry_after_ms);
                self.attempt = self.attempt.saturating_add(1);
                self.until = now.saturating_add(d);
                self.server_asked = retry_after_ms.is_some();
                Some(d)
            }
            // A split resends at once; an answer of any kind means the ingest is reachable.
            _ => {
                *self = Backoff::default();
                None
            }
        }
    }

    /// May a request start at `now`? `forced` (flush(), back online) skips our own wait but not
    /// one the server asked for.
    pub fn ready(&self, now: u64, forced: bool) -> bool {
        now >= self.until || (forced && !self.server_asked)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let table: &[(u16, Verdict, Outcome)] = &[
            (200, Verdict::Ack, Outcome::Remove),
            (204, Verdict::Ack, Outcome::Remove),
            (299, Verdict::Ack, Outcome::Remove),
            (400, Verdict::Drop, Outcome::Remove),
            (401, Verdict::Drop, Outcome::Remove),
            (403, Verdict::Drop, Outcome::Remove),
            (404, Verdict::Drop, Outcome::Remove),
            (413, Verdict::Split, Outcome::Split),
            (0, Verdict::Retry, Outcome::Keep),
            (408, Verdict::Retry, Outcome::Keep),
            (429, Verdict::Retry, Outcome::Keep),
            (500, Verdict::Retry, Outcome::Keep),
            (503, Verdict::Retry, Outcome::Keep),
            (599, Verdict::Retry, Outcome::Keep),
            (301, Verdict::Drop, Outcome::Remove),
        ];
        for &(status, v, o) in table {
            assert_eq!(classify(status), v, "{status}");
            assert_eq!(v.outcome(), o, "{status}");
        }
    }

    #[test]
    fn schedule_doubles_to_the_cap() {
        let max = u32::MAX;
        let ceilings: Vec<u64> = (0..10).map(|a| delay_ms(a, max, None)).collect();
        assert_eq!(
            ceilings,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(delay_ms(u32::MAX, max, None), 60_000);
        // Full jitter: anywhere from 0 to the ceiling.
        assert_eq!(delay_ms(3, 0, None), 0);
        assert_eq!(delay_ms(3, u32::MAX / 2, None), 3_999);
    }

    #[test]
    fn retry_after_is_a_floor_with_a_sane_cap() {
        assert_eq!(delay_ms(0, 0, Some(5_000)), 5_000);
        assert_eq!(delay_ms(0, u32::MAX, Some(100)), 1_000);
        assert_eq!(delay_ms(0, 0, Some(u64::MAX)), MAX_RETRY_AFTER_MS);
        assert_eq!(parse_retry_after_seconds("120"), Some(120_000));
        assert_eq!(
            parse_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"),
            None
        );
        assert_eq!(parse_retry_after_seconds("-1"), None);
    }

    #[test]
    fn backoff_state() {
        let mut b = Backoff::default();
        assert!(b.ready(0, false));
        assert_eq!(b.record(Verdict::Retry, 1_000, u32::MAX, None), Some(1_000));
        assert_eq!(b.record(Verdict::Retry, 2_000, u32::MAX, None), Some(2_000));
        assert!(!b.ready(3_999, false));
        assert!(b.ready(3_999, true), "flush() may skip our own wait");
        assert!(b.ready(4_000, false));
        assert_eq!(
            b.record(Verdict::Retry, 4_000, 0, Some(30_000)),
            Some(30_000)
        );
        assert!(!b.ready(5_000, true), "but not a wait the server asked for");
        assert_eq!(b.record(Verdict::Ack, 40_000, 0, None), None);
        assert_eq!(b, Backoff::default());
    }
}
