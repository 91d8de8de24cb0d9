//! Process metrics, rendered in the Prometheus text exposition format at `GET /metrics`.
//!
//! Hand-rolled on atomics: the set is small and fixed, and a metrics crate would add more code
//! than it saves. Counters with a label set that is open-ended (route × status, rejection rule)
//! sit behind a mutex held for a map update only; route and rule names are `&'static str`, so the
//! label space is bounded by the code, never by client input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket upper bounds, in seconds.
const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// All process metrics. One instance, shared through `AppState`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    accepted: AtomicU64,
    deduplicated: AtomicU64,
    bytes_in: AtomicU64,
    write_errors: AtomicU64,
    commits: AtomicU64,
    committed_requests: AtomicU64,
    connections: AtomicI64,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    bots_marked: AtomicU64,
    bots_dropped: AtomicU64,
    /// Time of the `write(2)` of one group commit.
    pub write_latency: Histogram,
    /// Time of the `fdatasync` of one group commit.
    pub fsync_latency: Histogram,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route, status)).or_default() += 1;
    }

    pub fn rejected(&self, rule: &'static str) {
        let mut map = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(rule).or_default() += 1;
    }

    pub fn accepted(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn deduplicated(&self, n: u64) {
        self.deduplicated.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn write_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One group commit that acknowledged `requests` requests.
    pub fn commit(&self, requests: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_requests
            .fetch_add(requests, Ordering::Relaxed);
    }

    /// A request refused by a rate limit (`scope`: `address` or `key`).
    pub fn rate_limited(&self, scope: &'static str) {
        let mut map = self.rate_limited.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(scope).or_default() += 1;
    }

    /// A message from a known bot: marked `context.bot` and written, or (`--drop-bots`) dropped.
    pub fn bot(&self, dropped: bool) {
        let c = if dropped {
            &self.bots_dropped
        } else {
            &self.bots_marked
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP footfall_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE footfall_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "footfall_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        counter(
            &mut out,
            "footfall_messages_accepted_total",
            "Messages written to the sink (duplicates are counted separately).",
            self.accepted.load(Ordering::Relaxed),
        );
        out.push_str(
            "# HELP footfall_messages_rejected_total Messages rejected by validation, by rule.\n",
        );
        out.push_str("# TYPE footfall_messages_rejected_total counter\n");
        for (rule, n) in self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "footfall_messages_rejected_total{{rule=\"{rule}\"}} {n}"
            );
        }
        counter(
            &mut out,
            "footfall_messages_deduplicated_total",
            "Messages acknowledged but not written again (seen within the dedupe window).",
            self.deduplicated.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "footfall_bytes_in_total",
            "Body bytes (as sent, before gzip decoding) of requests that were read and decoded; bodies refused while reading or decoding (408, 413, bad gzip) are not counted.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "footfall_sink_write_errors_total",
            "Failed group commits (answered 503).",
            self.write_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "footfall_sink_commits_total",
            "Group commits (one write and at most one fdatasync each).",
            self.commits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "footfall_sink_committed_requests_total",
            "Requests acknowledged by group commits.",
            self.committed_requests.load(Ordering::Relaxed),
        );
        out.push_str(
            "# HELP footfall_rate_limited_total Requests refused with 429, by limit (address, key).\n",
        );
        out.push_str("# TYPE footfall_rate_limited_total counter\n");
        for (scope, n) in self
            .rate_limited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "footfall_rate_limited_total{{scope=\"{scope}\"}} {n}");
        }
        out.push_str(
            "# HELP footfall_messages_bot_total Messages from known bots, marked (written with context.bot) or dropped.\n",
        );
        out.push_str("# TYPE footfall_messages_bot_total counter\n");
        let _ = writeln!(
            out,
            "footfall_messages_bot_total{{action=\"marked\"}} {}",
            self.bots_marked.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "footfall_messages_bot_total{{action=\"dropped\"}} {}",
            self.bots_dropped.load(Ordering::Relaxed)
        );
        out.push_str("# HELP footfall_connections Open client connections.\n");
        out.push_str("# TYPE footfall_connections gauge\n");
        let _ = writeln!(
            out,
            "footfall_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        self.write_latency.render(
            &mut out,
            "footfall_sink_write_seconds",
            "Latency of one group commit's write.",
        );
        self.fsync_latency.render(
            &mut out,
            "footfall_sink_fsync_seconds",
            "Latency of one group commit's fdatasync.",
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("/v1/batch", 200);
        m.request("/v1/batch", 200);
        m.request("/v1/track", 413);
        m.rejected("required");
        m.accepted(5);
        m.bytes_in(100);
        m.fsync_latency.observe(Duration::from_micros(300));
        m.fsync_latency.observe(Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains("footfall_http_requests_total{route=\"/v1/batch\",status=\"200\"} 2"));
        assert!(text.contains("footfall_http_requests_total{route=\"/v1/track\",status=\"413\"} 1"));
        assert!(text.contains("footfall_messages_rejected_total{rule=\"required\"} 1"));
        assert!(text.contains("footfall_messages_accepted_total 5"));
        assert!(text.contains("footfall_bytes_in_total 100"));
        assert!(text.contains("footfall_sink_fsync_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("footfall_sink_fsync_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("footfall_sink_fsync_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("footfall_sink_fsync_seconds_count 2"));
        // Every non-comment line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
