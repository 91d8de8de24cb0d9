//! Storage faults against the real binary: a full disk (a small tmpfs mounted as the data
//! directory) and an unwritable one (immutable or read-only directory, then an immutable open
//! file). In every case the failing requests get 503 with a JSON body, nothing of them reaches
//! the files (no partial line either), and the server recovers by itself once the fault is gone:
//! no restart, and a resend of the refused request is written exactly once.
//!
//! The tests run as root here, where `chmod` does not stop writes, so faults are made with
//! `mount -t tmpfs` and `chattr +i` (checked to really refuse a write before relying on them);
//! as a non-root user the unwritable case uses `chmod` instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs of a fixed size, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Self(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still hold a file open while the test unwinds.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `chattr +i` / `-i`.
fn chattr(path: &Path, flag: &str) {
    let out = Command::new("chattr").arg(flag).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "chattr {flag} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn msg(id: &str, pad: usize) -> Value {
    json!({"type":"track","event":"Filled","anonymousId":"a1","messageId":id,
           "properties":{"pad":"x".repeat(pad)}})
}

fn batch(prefix: &str, n: usize, pad: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let body =
        json!({"writeKey":"dev","batch": ids.iter().map(|id| msg(id, pad)).collect::<Vec<_>>()});
    (ids, body)
}

fn count_ids(data: &Path) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    // read_lines panics on a torn line or one that is not a JSON object.
    for line in read_lines(data) {
        *counts
            .entry(line["messageId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

fn assert_unavailable(status: u16, body: &Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn disk_full_is_503_acknowledges_nothing_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _fs = match Tmpfs::mount(&data, "1m") {
        Ok(fs) => fs,
        Err(e) if !is_root() => {
            eprintln!("SKIPPED: mounting a tmpfs needs root ({e})");
            return;
        }
        Err(e) => panic!("cannot mount a tmpfs as root: {e}"),
    };
    // Leave ~160 KiB free: the server's first files fit, a few batches later the disk is full.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0u8; 1024 * 1024 - 160 * 1024]).unwrap();

    let srv = Server::start_in(dir, &[]);
    let mut acked: Vec<String> = Vec::new();
    let mut refused: Option<Vec<String>> = None;
    for round in 0..100 {
        // ~12 KiB per request.
        let (ids, body) = batch(&format!("b{round}"), 20, 500);
        let resp = srv
            .client
            .post(srv.url("/v1/batch"))
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let retry_after = resp.headers().get("retry-after").cloned();
        let (s, b) = status_json(resp).await;
        if s == 200 {
            acked.extend(ids);
            continue;
        }
        assert_unavailable(s, &b);
        assert!(
            b["error"]["message"].as_str().unwrap().contains("space"),
            "{b}"
        );
        assert_eq!(retry_after.unwrap(), "5");
        refused = Some(ids);
        break;
    }
    let refused = refused.expect("the disk never filled up");
    assert!(!acked.is_empty(), "nothing fitted before the disk was full");
    // It stays refused while the disk is full, with the same JSON body.
    let (_, body) = batch("again", 20, 500);
    let (s, b) = srv.post_json("/v1/batch", body).await;
    assert_unavailable(s, &b);

    // Acknowledged: all there, once. Refused: not a byte (partial writes were cut back).
    let counts = count_ids(&srv.data());
    for id in &acked {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    assert!(refused.iter().all(|id| !counts.contains_key(id)));
    assert_eq!(counts.len(), acked.len());

    // Space returns: no restart, the very same request is now written, once.
    std::fs::remove_file(&filler).unwrap();
    let body = json!({"writeKey":"dev","batch": refused.iter().map(|id| msg(id, 500)).collect::<Vec<_>>()});
    let (s, b) = srv.post_json("/v1/batch", body.clone()).await;
    assert_eq!((s, b), (200, json!({"success":true})));
    let (s, _) = srv.post_json("/v1/batch", body).await;
    assert_eq!(s, 200, "resend is deduplicated");
    let counts = count_ids(&srv.data());
    for id in acked.iter().chain(&refused) {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    let metrics = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("footfall_http_requests_total{route=\"/v1/batch\",status=\"503\"} 2"),
        "{metrics}"
    );
    assert!(!srv.stderr().contains("panicked"));
}

#[tokio::test]
async fn unwritable_directory_and_file_are_503_and_recover() {
    let srv = Server::start(&[]);
    let source_dir = srv.data().join("dev");
    assert!(source_dir.is_dir(), "the sink creates the source directory");

    // 1. The source directory refuses new entries, so today's folder cannot be created.
    let make_unwritable = |on: bool| {
        if is_root() {
            chattr(&source_dir, if on { "+i" } else { "-i" });
        } else {
            use std::os::unix::fs::PermissionsExt;
            let mode = if on { 0o500 } else { 0o700 };
            std::fs::set_permissions(&source_dir, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    make_unwritable(true);
    // Check the fault is real before relying on it.
    let probe = std::fs::create_dir(source_dir.join("probe"));
    if probe.is_ok() {
        make_unwritable(false);
        panic!("the directory is still writable: the fault would test nothing");
    }
    let (s, b) = srv
        .post_json(
            "/v1/batch",
            json!({"writeKey":"dev","batch":[msg("d1", 10), msg("d2", 10)]}),
        )
        .await;
    make_unwritable(false);
    assert_unavailable(s, &b);
    assert!(count_ids(&srv.data()).is_empty());
    // Recovered by itself.
    let (s, _) = srv
        .post_json(
            "/v1/batch",
            json!({"writeKey":"dev","batch":[msg("d1", 10), msg("d2", 10)]}),
        )
        .await;
    assert_eq!(s, 200);

    // 2. The open data file itself becomes immutable (root only: chmod does not affect a file
    // already open for writing). The write fails, the file cannot even be cut back, so the
    // writer abandons it and starts a new one for the next request.
    if is_root() {
        let open: Vec<_> = data_files(&srv.data())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".open"))
            .collect();
        assert_eq!(open.len(), 1, "{open:?}");
        chattr(&open[0], "+i");
        let (s, b) = srv
            .post_json(
                "/v1/batch",
                json!({"writeKey":"dev","batch":[msg("f1", 10)]}),
            )
            .await;
        assert_unavailable(s, &b);
        let (s, _) = srv
            .post_json(
                "/v1/batch",
                json!({"writeKey":"dev","batch":[msg("f1", 10)]}),
            )
            .await;
        chattr(&open[0], "-i");
        assert_eq!(s, 200, "a new file takes over");
    }
    let counts = count_ids(&srv.data());
    let want: &[&str] = if is_root() {
        &["d1", "d2", "f1"]
    } else {
        &["d1", "d2"]
    };
    for id in want {
        assert_eq!(counts.get(*id), Some(&1), "{id}: {counts:?}");
    }
    assert_eq!(counts.len(), want.len());
    assert!(!srv.stderr().contains("panicked"));
    tokio::time::sleep(Duration::from_millis(10)).await;
}
