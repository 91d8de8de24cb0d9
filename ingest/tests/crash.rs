//! Crash safety against the real binary: concurrent clients, `kill -9` at random moments, restart
//! on the same data directory, keep going. At the end every message whose request got a 2xx is
//! in the NDJSON exactly once, every line parses, and no line is torn.
//!
//! Clients behave like the SDK: a request that got no 2xx (connection reset by the kill, refused
//! while the server is down) is resent, same messageIds, until it is acknowledged — so requests
//! that were written but never answered come back after the restart and must be deduplicated by
//! the window the new process rebuilt from the files. Some acknowledged batches are also resent
//! on purpose (a client that lost the response). The random schedule is printed with its seed;
//! `FOOTFALL_CRASH_SEED=N` replays it, `FOOTFALL_CRASH_CYCLES=N` changes the number of kills.

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CLIENTS: usize = 6;
const DEFAULT_CYCLES: usize = 24;

/// xorshift64*: enough randomness for a schedule, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    acked_requests: AtomicU64,
    failed_requests: AtomicU64,
    resent_after_failure: AtomicU64,
    resent_after_ack: AtomicU64,
}

struct Shared {
    /// The live server's port; 0 while it is down.
    port: AtomicU16,
    /// Clients stop starting new batches (they still finish their pending one).
    stop: AtomicBool,
    stats: Stats,
    /// Every messageId whose request got a 2xx.
    acked: Mutex<Vec<String>>,
    /// Per client: the ids of the request it is trying to get acknowledged (None once acked).
    in_flight: Mutex<Vec<Option<Vec<String>>>>,
    /// Responses that are neither 2xx nor an expected refusal: a bug.
    unexpected: Mutex<Vec<String>>,
}

fn message(id: &str, rng: &mut Rng) -> Value {
    let pad = "p".repeat(rng.below(400) as usize);
    json!({"type":"track","event":"Crash Test","anonymousId":"anon-1","messageId":id,
           "timestamp":"2024-05-01T10:00:00.000Z","properties":{"pad":pad}})
}

async fn client(n: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut seq = 0u64;
    let mut last_acked: Option<(Vec<String>, String)> = None;
    loop {
        // A resend of something already acknowledged, now and then (the response was "lost").
        let (ids, body, resend_of_acked) = match &last_acked {
            Some((ids, body)) if rng.below(8) == 0 => (ids.clone(), body.clone(), true),
            _ => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let count = 1 + rng.below(12) as usize;
                let ids: Vec<String> = (0..count).map(|i| format!("c{n}-{seq}-{i}")).collect();
                seq += 1;
                let batch: Vec<Value> = ids.iter().map(|id| message(id, &mut rng)).collect();
                let body =
                    json!({"writeKey":"dev","sentAt":"2024-05-01T10:00:01.000Z","batch":batch})
                        .to_string();
                (ids, body, false)
            }
        };
        if resend_of_acked {
            shared
                .stats
                .resent_after_ack
                .fetch_add(1, Ordering::Relaxed);
        }
        shared.in_flight.lock().unwrap()[n] = Some(ids.clone());
        // Until acknowledged, like the SDK's retry loop.
        let mut attempt = 0;
        loop {
            let port = shared.port.load(Ordering::SeqCst);
            if port == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if attempt > 0 {
                shared
                    .stats
                    .resent_after_failure
                    .fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            shared.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = http
                .post(format!("http://127.0.0.1:{port}/v1/batch"))
                .header("content-type", "text/plain;charset=UTF-8")
                .body(body.clone())
                .send()
                .await;
            let status = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    if status != 200 && status != 503 {
                        shared
                            .unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{status} {text}"));
                    }
                    // Only a complete 2xx response counts as an acknowledgement.
                    (status == 200 && text == r#"{"success":true}"#).then_some(status)
                }
                Err(_) => None,
            };
            if status.is_some() {
                shared.in_flight.lock().unwrap()[n] = None;
                shared.stats.acked_requests.fetch_add(1, Ordering::Relaxed);
                if !resend_of_acked {
                    shared.acked.lock().unwrap().extend(ids.iter().cloned());
                }
                last_acked = Some((ids, body));
                break;
            }
            shared.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
        }
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged_and_duplicates_nothing() {
    let seed: u64 = std::env::var("FOOTFALL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let cycles: usize = std::env::var("FOOTFALL_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    eprintln!("crash test: seed {seed}, {cycles} kill -9 cycles, {CLIENTS} clients");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared {
        port: AtomicU16::new(0),
        stop: AtomicBool::new(false),
        stats: Stats::default(),
        acked: Mutex::new(Vec::new()),
        in_flight: Mutex::new(vec![None; CLIENTS]),
        unexpected: Mutex::new(Vec::new()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(n, seed, shared.clone())))
        .collect();

    let started = Instant::now();
    let mut peak_hwm_kb = 0;
    let mut kill_after_ms = Vec::new();
    let mut start_ms: Vec<u128> = Vec::new();
    let mut start = |shared: &Shared| -> Child {
        let t = Instant::now();
        let (child, port) = spawn(dir.path(), &[]);
        start_ms.push(t.elapsed().as_millis());
        shared.port.store(port, Ordering::SeqCst);
        child
    };
    let mut torn_injected = 0;
    let mut torn_by_kill = 0;
    // Requests the kill caught after their lines were written but before the 2xx went out.
    let mut written_unacked_at_kill = 0;
    for _ in 0..cycles {
        let mut child = start(&shared);
        // Let the clients find it, then kill at a random moment of the load.
        let ms = 60 + rng.below(440);
        kill_after_ms.push(ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        peak_hwm_kb = peak_hwm_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        shared.port.store(0, Ordering::SeqCst);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A plain text scan (lines are compact JSON): cheap enough to do at every kill.
        let mut on_disk = std::collections::HashSet::new();
        for p in data_files(&dir.path().join("data")) {
            let text = std::fs::read_to_string(p).unwrap();
            for part in text.split("\"messageId\":\"").skip(1) {
                on_disk.insert(part.split('"').next().unwrap_or("").to_owned());
            }
        }
        written_unacked_at_kill += shared
            .in_flight
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .filter(|ids| ids.iter().all(|id| on_disk.contains(id)))
            .count();
        // A kill -9 can itself tear the last line: Linux stops a regular-file write(2) between
        // pages when a fatal signal is pending, so a group larger than a page may be cut short.
        // Nothing of it was acknowledged; count it, the next start must repair it.
        let open_file = data_files(&dir.path().join("data"))
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".open"));
        let torn_now = open_file.as_ref().is_some_and(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.last().is_some_and(|b| *b != b'\n')
        });
        if torn_now {
            torn_by_kill += 1;
        }
        // A power loss can tear a line too: now and then leave half a line at the end of a clean
        // open file, as a power cut would, for the next start to repair. Its id must never show up.
        if !torn_now && rng.below(3) == 0 {
            if let Some(open) = open_file {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(open).unwrap();
                let cut = 1 + rng.below(60) as usize;
                let torn =
                    r#"{"anonymousId":"anon-1","messageId":"torn-by-power-loss","event":"x"}"#;
                f.write_all(&torn.as_bytes()[..cut]).unwrap();
                torn_injected += 1;
            }
        }
        // Sometimes come back at once, sometimes after the clients piled up retries.
        tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
    }

    // The last run: no kill. Clients finish what they have pending, then the server drains.
    let mut child = start(&shared);
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("clients did not finish their pending requests")
            .unwrap();
    }
    // SAFETY: sending SIGTERM to our own child by its pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "{status:?}");
    assert!(!log.contains("panicked"), "a panic in the server log");

    // Every line parses and none is torn (read_lines panics otherwise).
    let lines = read_lines(&dir.path().join("data"));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        assert_eq!(line["source"], "dev");
        *counts
            .entry(line["messageId"].as_str().expect("messageId"))
            .or_default() += 1;
    }
    let acked = shared.acked.lock().unwrap().clone();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    let duplicated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unacked_on_disk: Vec<&&str> = counts
        .keys()
        .filter(|id| !acked.iter().any(|a| a == **id))
        .collect();
    let torn_repairs = log.matches("truncated a torn last line").count();
    let s = &shared.stats;
    eprintln!(
        "crash test: {cycles} kills in {:.1} s (kill after {:?} ms); requests {} (acked {}, failed {}, \
         resent after failure {}, resent after ack {}; written but not yet acknowledged when killed {}); messages acknowledged {}, lines found {}, \
         missing {}, duplicated {}, written but never acknowledged {}; torn tails injected {}, \
         torn by the kill {}, repaired {}; start-up to listening {:?} ms; server peak RSS (VmHWM) {} KiB",
        started.elapsed().as_secs_f64(),
        kill_after_ms,
        s.requests.load(Ordering::Relaxed),
        s.acked_requests.load(Ordering::Relaxed),
        s.failed_requests.load(Ordering::Relaxed),
        s.resent_after_failure.load(Ordering::Relaxed),
        s.resent_after_ack.load(Ordering::Relaxed),
        written_unacked_at_kill,
        acked.len(),
        lines.len(),
        missing.len(),
        duplicated.len(),
        unacked_on_disk.len(),
        torn_injected,
        torn_by_kill,
        torn_repairs,
        start_ms,
        peak_hwm_kb,
    );
    let unexpected = shared.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "unexpected responses: {unexpected:?}"
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(duplicated.is_empty(), "written twice: {duplicated:?}");
    // Every client resent until acknowledged, so nothing on disk is unacknowledged either.
    assert!(unacked_on_disk.is_empty(), "{unacked_on_disk:?}");
    assert_eq!(
        torn_repairs,
        torn_injected + torn_by_kill,
        "every torn tail is repaired (and logged)"
    );
    assert_eq!(lines.len(), acked.len());
    assert!(
        s.resent_after_failure.load(Ordering::Relaxed) > 0,
        "no request was cut by a kill: the test exercised nothing"
    );
    assert!(acked.len() > 1000, "too little load: {}", acked.len());
}
