//! Command-line and environment configuration.
//!
//! `Config` is what clap parses (every flag also reads a `FOOTFALL_*` env var); `Config::validate`
//! turns it into `Settings`, the checked runtime form the rest of the crate uses. Keeping the two
//! apart means bad configuration is reported once, at start-up, as a one-line reason, and nothing
//! downstream has to re-check syntax.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::auth::{is_valid_source_name, KeyEntry, KeyStore, OriginPolicy};
use crate::ratelimit::Rate;

/// Default listen address: loopback only, so a bare `footfall-ingest` is never exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The development write key accepted when no `--write-key` is given. Public by design.
pub const DEV_WRITE_KEY: &str = "dev";
/// Segment's per-message limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's per-request limit, applied to the decoded (decompressed) body.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Segment's per-batch message count limit.
pub const DEFAULT_MAX_BATCH_MESSAGES: usize = 2_500;
/// Time allowed to receive a request's headers (slow-loris defence).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Time allowed between two reads of a request body before answering 408.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;
/// Concurrent connection cap; further connections wait in the kernel's accept backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_024;
/// Rotate a file once it reaches this size (files also rotate every UTC hour).
pub const DEFAULT_ROTATE_BYTES: u64 = 128 * 1024 * 1024;
/// Dedupe window: Segment keeps at least 24 hours.
pub const DEFAULT_DEDUPE_WINDOW_SECS: u64 = 24 * 60 * 60;
/// Dedupe capacity per source; the oldest ids are forgotten first when it is full (bounded memory:
/// about 26 bytes per id whatever its length, so about 27 MB per source at the default; see
/// `dedupe::DedupeWindow`).
pub const DEFAULT_DEDUPE_CAPACITY: usize = 1_000_000;
/// How long a graceful shutdown waits for in-flight requests.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// When a request's lines are considered written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncMode {
    /// Acknowledge only after `fdatasync` (shared by concurrent requests: group commit).
    Always,
    /// Acknowledge after `write(2)`; the OS flushes later. Faster, loses data on power loss.
    Never,
}

/// Log output format (logs go to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Footfall ingest: a Segment-compatible HTTP API that durably appends events as NDJSON.
///
/// Every flag can also be set with the environment variable named in brackets. Repeatable flags
/// also take a comma-separated list, there and on the command line (so a write key or an origin
/// cannot contain a comma).
#[derive(Debug, Clone, Parser)]
#[command(name = "footfall-ingest", version)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "FOOTFALL_LISTEN", default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Directory the NDJSON files are written under: {data-dir}/{source}/dt=YYYY-MM-DD/HH-SEQ.ndjson.
    #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Accepted write key, optionally mapped to a source name ([A-Za-z0-9_-], 1-64 chars; default:
    /// the key itself). Repeatable. Without any, the development key `dev` (source `dev`) is accepted.
    #[arg(
        long = "write-key",
        env = "FOOTFALL_WRITE_KEY",
        value_name = "KEY[:SOURCE]",
        value_delimiter = ','
    )]
    pub write_keys: Vec<String>,

    /// Origins allowed to send from a browser (CORS). `ORIGIN` applies to every key, `KEY=ORIGIN`
    /// to one key (and replaces the global list for it); `*` means any origin. Repeatable.
    /// Default: any origin for every key. Example: `--allowed-origin dev=https://shop.example`.
    #[arg(
        long = "allowed-origin",
        env = "FOOTFALL_ALLOWED_ORIGIN",
        value_name = "[KEY=]ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// `always`: acknowledge after fdatasync (group commit); `never`: after write(2) only.
    #[arg(long, env = "FOOTFALL_FSYNC", value_enum, default_value = "always")]
    pub fsync: FsyncMode,

    /// Largest accepted message, in bytes of compact JSON; larger messages are rejected (400).
    #[arg(long, env = "FOOTFALL_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,

    /// Largest request body, after gzip decoding (also the cap on the raw body); larger → 413.
    #[arg(long, env = "FOOTFALL_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES, value_name = "BYTES")]
    pub max_request_bytes: usize,

    /// Most messages in one /v1/batch request; more → 413.
    #[arg(long, env = "FOOTFALL_MAX_BATCH_MESSAGES", default_value_t = DEFAULT_MAX_BATCH_MESSAGES, value_name = "N")]
    pub max_batch_messages: usize,

    /// Seconds allowed to receive a request's headers before the connection is closed.
    #[arg(long, env = "FOOTFALL_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS, value_name = "SECS")]
    pub header_read_timeout: u64,

    /// Seconds allowed between two reads of a request body before answering 408.
    #[arg(long, env = "FOOTFALL_BODY_READ_TIMEOUT", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECS, value_name = "SECS")]
    pub body_read_timeout: u64,

    /// Most concurrent connections; further ones wait in the accept backlog.
    #[arg(long, env = "FOOTFALL_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,

    /// Rotate the current file once it reaches this many bytes (files also rotate every UTC hour).
    #[arg(long, env = "FOOTFALL_ROTATE_BYTES", default_value_t = DEFAULT_ROTATE_BYTES, value_name = "BYTES")]
    pub rotate_bytes: u64,

    /// Seconds a (source, messageId) pair is remembered for deduplication.
    #[arg(long, env = "FOOTFALL_DEDUPE_WINDOW", default_value_t = DEFAULT_DEDUPE_WINDOW_SECS, value_name = "SECS")]
    pub dedupe_window: u64,

    /// Most message ids remembered per source (oldest forgotten first); bounds dedupe memory.
    #[arg(long, env = "FOOTFALL_DEDUPE_CAPACITY", default_value_t = DEFAULT_DEDUPE_CAPACITY, value_name = "N")]
    pub dedupe_capacity: usize,

    /// Keep the full client IP in context.ip (default: IPv4 /24, IPv6 /48).
    #[arg(long, env = "FOOTFALL_KEEP_IP")]
    pub keep_ip: bool,

    /// Trust X-Forwarded-For (leftmost address) and a client-sent context.ip: only behind a proxy
    /// that sets them.
    #[arg(long, env = "FOOTFALL_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Log format (logs go to stderr; filter with RUST_LOG).
    #[arg(
        long,
        env = "FOOTFALL_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,

    /// Requests per second allowed per client address (IPv6: per /64; with --trust-proxy the
    /// X-Forwarded-For address), token bucket; over it → 429 with Retry-After. 0 = off (default).
    #[arg(
        long,
        env = "FOOTFALL_RATE_LIMIT_IP",
        default_value_t = 0.0,
        value_name = "PER_SEC"
    )]
    pub rate_limit_ip: f64,

    /// Requests one client address may send at once before the per-second rate applies.
    /// Default: the rate (one second's worth), at least 1.
    #[arg(long, env = "FOOTFALL_RATE_LIMIT_IP_BURST", value_name = "N")]
    pub rate_limit_ip_burst: Option<u64>,

    /// Requests per second allowed per write key, token bucket; over it → 429 with Retry-After.
    /// 0 = off (default).
    #[arg(
        long,
        env = "FOOTFALL_RATE_LIMIT_KEY",
        default_value_t = 0.0,
        value_name = "PER_SEC"
    )]
    pub rate_limit_key: f64,

    /// Requests one write key may send at once before the per-second rate applies.
    /// Default: the rate (one second's worth), at least 1.
    #[arg(long, env = "FOOTFALL_RATE_LIMIT_KEY_BURST", value_name = "N")]
    pub rate_limit_key_burst: Option<u64>,

    /// Serve /metrics on this separate (private) address instead of the public one, where it
    /// then answers 404. Example: 127.0.0.1:9090.
    #[arg(long, env = "FOOTFALL_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Acknowledge but do not write messages from known bots and crawlers (by user agent).
    /// Without it they are written with `context.bot: true`.
    #[arg(long, env = "FOOTFALL_DROP_BOTS")]
    pub drop_bots: bool,

    /// Serve the files of DIR at `/` (for the demo); the API routes take precedence.
    #[arg(long, env = "FOOTFALL_STATIC_DIR", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Seconds a graceful shutdown (SIGINT/SIGTERM) waits for in-flight requests.
    #[arg(long, env = "FOOTFALL_SHUTDOWN_GRACE", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS, value_name = "SECS")]
    pub shutdown_grace: u64,
}

/// Validated runtime settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub keys: KeyStore,
    /// True when no key was configured and the dev key is in use (logged at start-up).
    pub dev_key_only: bool,
    pub fsync: FsyncMode,
    pub limits: Limits,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub rotate_bytes: u64,
    pub dedupe_window: Duration,
    pub dedupe_capacity: usize,
    pub keep_ip: bool,
    pub trust_proxy: bool,
    pub log_format: LogFormat,
    pub static_dir: Option<PathBuf>,
    pub shutdown_grace: Duration,
    /// Per client address; `None` = off.
    pub rate_limit_ip: Option<Rate>,
    /// Per write key; `None` = off.
    pub rate_limit_key: Option<Rate>,
    pub metrics_listen: Option<SocketAddr>,
    pub drop_bots: bool,
}

/// Request-level limits, shared by decode and validate.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_request_bytes: usize,
    pub max_batch_messages: usize,
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_batch_messages: DEFAULT_MAX_BATCH_MESSAGES,
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS),
        }
    }
}

/// A configuration problem, reported as one line before exiting non-zero.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Config {
    /// Checks everything clap cannot and builds the runtime settings.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for raw in &self.write_keys {
            let (key, source) = match raw.split_once(':') {
                Some((k, s)) => (k, s),
                None => (raw.as_str(), raw.as_str()),
            };
            if key.is_empty() {
                return Err(bad(format!("--write-key {raw:?}: the key is empty")));
            }
            if key.contains('=') || key.chars().any(char::is_whitespace) {
                return Err(bad(format!(
                    "--write-key {raw:?}: a key may not contain '=' or whitespace"
                )));
            }
            if !is_valid_source_name(source) {
                return Err(bad(format!(
                    "--write-key {raw:?}: source {source:?} must be 1-64 characters of [A-Za-z0-9_-] \
                     (add :SOURCE to name it when the key has other characters)"
                )));
            }
            if entries.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("--write-key {key:?} is given twice")));
            }
            entries.push((key.to_owned(), source.to_owned()));
        }
        let dev_key_only = entries.is_empty();
        if dev_key_only {
            entries.push((DEV_WRITE_KEY.to_owned(), DEV_WRITE_KEY.to_owned()));
        }

        // Origins: global entries first, then per-key entries replace the global list for that key.
        let mut global: Option<Vec<String>> = None;
        let mut per_key: HashMap<String, Vec<String>> = HashMap::new();
        for raw in &self.allowed_origins {
            let (key, origin) = match raw.split_once('=') {
                Some((k, o)) => (Some(k), o),
                None => (None, raw.as_str()),
            };
            let origin = normalise_origin(origin).ok_or_else(|| {
                bad(format!(
                    "--allowed-origin {raw:?}: expected `*` or scheme://host[:port]"
                ))
            })?;
            match key {
                Some(k) => {
                    if !entries.iter().any(|(ek, _)| ek == k) {
                        return Err(bad(format!(
                            "--allowed-origin {raw:?}: key {k:?} is not a configured --write-key"
                        )));
                    }
                    per_key.entry(k.to_owned()).or_default().push(origin);
                }
                None => global.get_or_insert_with(Vec::new).push(origin),
            }
        }
        let policy_of = |list: &[String]| {
            if list.iter().any(|o| o == "*") {
                OriginPolicy::Any
            } else {
                OriginPolicy::List(list.to_vec())
            }
        };
        let keys = KeyStore::new(
            entries
                .into_iter()
                .map(|(key, source)| {
                    let origins = match per_key.get(&key).or(global.as_ref()) {
                        Some(list) => policy_of(list),
                        None => OriginPolicy::Any,
                    };
                    KeyEntry::new(key, source, origins)
                })
                .collect(),
        );

        let positive = [
            ("--max-message-bytes", self.max_message_bytes as u64),
            ("--max-request-bytes", self.max_request_bytes as u64),
            ("--max-batch-messages", self.max_batch_messages as u64),
            ("--header-read-timeout", self.header_read_timeout),
            ("--body-read-timeout", self.body_read_timeout),
            ("--max-connections", self.max_connections as u64),
            ("--rotate-bytes", self.rotate_bytes),
            ("--dedupe-window", self.dedupe_window),
            ("--dedupe-capacity", self.dedupe_capacity as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(format!("{name} must be greater than 0")));
        }
        if self.max_message_bytes > self.max_request_bytes {
            return Err(bad(format!(
                "--max-message-bytes ({}) must not exceed --max-request-bytes ({})",
                self.max_message_bytes, self.max_request_bytes
            )));
        }
        let rate = |name: &str, per_sec: f64, burst: Option<u64>| {
            if !per_sec.is_finite() || per_sec < 0.0 {
                return Err(bad(format!(
                    "{name} must be a number of requests per second, 0 for off"
                )));
            }
            if burst == Some(0) {
                return Err(bad(format!("{name}-burst must be greater than 0")));
            }
            Ok(Rate::new(per_sec, burst.unwrap_or(per_sec.ceil() as u64)))
        };
        let rate_limit_ip = rate(
            "--rate-limit-ip",
            self.rate_limit_ip,
            self.rate_limit_ip_burst,
        )?;
        let rate_limit_key = rate(
            "--rate-limit-key",
            self.rate_limit_key,
            self.rate_limit_key_burst,
        )?;
        if self
            .metrics_listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return Err(bad("--metrics-listen must differ from --listen"));
        }
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(bad(format!(
                    "--static-dir {}: not a directory",
                    dir.display()
                )));
            }
        }
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            return Err(bad(format!(
                "--data-dir {}: exists and is not a directory",
                self.data_dir.display()
            )));
        }

        Ok(Settings {
            listen: self.listen,
            data_dir: self.data_dir,
            keys,
            dev_key_only,
            fsync: self.fsync,
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                max_request_bytes: self.max_request_bytes,
                max_batch_messages: self.max_batch_messages,
                body_read_timeout: Duration::from_secs(self.body_read_timeout),
            },
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            max_connections: self.max_connections,
            rotate_bytes: self.rotate_bytes,
            dedupe_window: Duration::from_secs(self.dedupe_window),
            dedupe_capacity: self.dedupe_capacity,
            keep_ip: self.keep_ip,
            trust_proxy: self.trust_proxy,
            log_format: self.log_format,
            static_dir: self.static_dir,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            rate_limit_ip,
            rate_limit_key,
            metrics_listen: self.metrics_listen,
            drop_bots: self.drop_bots,
        })
    }
}

/// `*` or `scheme://host[:port]` (no path), lower-cased as browsers send it in `Origin`.
fn normalise_origin(origin: &str) -> Option<String> {
    let origin = origin.trim();
    if origin == "*" {
        return Some(origin.to_owned());
    }
    let (scheme, rest) = origin.split_once("://")?;
    let valid_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if !valid_scheme || rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace)
    {
        return None;
    }
    Some(format!("{}://{}", scheme, rest).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["footfall-ingest"];
        argv.extend_from_slice(args);
        let cfg = Config::try_parse_from(argv).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_accept_the_dev_key() {
        let s = parse(&[]).unwrap();
        assert!(s.dev_key_only);
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.keys.lookup("dev").unwrap().source(), "dev");
        assert_eq!(s.limits.max_message_bytes, 32 * 1024);
        assert_eq!(s.limits.max_request_bytes, 500 * 1024);
        assert_eq!(s.limits.max_batch_messages, 2500);
        assert_eq!(s.fsync, FsyncMode::Always);
        assert!(s.rate_limit_ip.is_none() && s.rate_limit_key.is_none());
        assert!(s.metrics_listen.is_none() && !s.drop_bots);
    }

    #[test]
    fn rate_limits_default_their_burst_to_one_second() {
        let s = parse(&[
            "--rate-limit-ip",
            "2.5",
            "--rate-limit-key",
            "100",
            "--rate-limit-key-burst",
            "1000",
        ])
        .unwrap();
        assert_eq!(
            s.rate_limit_ip,
            Some(Rate {
                per_second: 2.5,
                burst: 3.0
            })
        );
        assert_eq!(
            s.rate_limit_key,
            Some(Rate {
                per_second: 100.0,
                burst: 1000.0
            })
        );
    }

    #[test]
    fn write_keys_map_to_sources_and_origins() {
        let s = parse(&[
            "--write-key",
            "k1:web",
            "--write-key",
            "k2",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "k2=*",
        ])
        .unwrap();
        assert!(!s.dev_key_only);
        assert!(s.keys.lookup("dev").is_none());
        let k1 = s.keys.lookup("k1").unwrap();
        assert_eq!(k1.source(), "web");
        assert!(k1.allows_origin("https://a.example"));
        assert!(!k1.allows_origin("https://b.example"));
        assert!(s
            .keys
            .lookup("k2")
            .unwrap()
            .allows_origin("https://b.example"));
    }

    #[test]
    fn bad_configuration_is_one_line() {
        for (args, needle) in [
            (vec!["--write-key", "k:../etc"], "source"),
            (vec!["--write-key", "k", "--write-key", "k"], "twice"),
            (
                vec!["--allowed-origin", "nokey=https://x"],
                "not a configured",
            ),
            (vec!["--allowed-origin", "not an origin"], "expected"),
            (vec!["--max-batch-messages", "0"], "greater than 0"),
            (
                vec!["--max-message-bytes", "10", "--max-request-bytes", "5"],
                "exceed",
            ),
            (vec!["--fsync", "sometimes"], "invalid value"),
            (vec!["--listen", "nope"], "invalid value"),
            (vec!["--rate-limit-ip=-1"], "per second"),
            (vec!["--rate-limit-key", "NaN"], "per second"),
            (
                vec!["--rate-limit-key", "5", "--rate-limit-key-burst", "0"],
                "burst",
            ),
            (
                vec![
                    "--listen",
                    "127.0.0.1:9000",
                    "--metrics-listen",
                    "127.0.0.1:9000",
                ],
                "differ",
            ),
        ] {
            let err = parse(&args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.lines().next().unwrap().is_empty());
        }
    }
}
