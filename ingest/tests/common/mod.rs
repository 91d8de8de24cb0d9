//! Shared helpers of the real-binary test files: start `footfall-ingest` on an ephemeral port
//! with its own data directory, talk to it (reqwest or raw sockets), read back its NDJSON files.
//!
//! Each test file is its own crate and uses a subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BIN: &str = env!("CARGO_BIN_EXE_footfall-ingest");

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args)
    }

    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let (child, port) = spawn(dir.path(), args);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            child,
            port,
            dir,
            client,
        }
    }

    /// `kill -9` the process and start a new one on the same data directory (new port).
    pub fn kill9_and_restart(&mut self, args: &[&str]) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, port) = spawn(self.dir.path(), args);
        self.child = child;
        self.port = port;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        status_json(resp).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        self.post(path, "application/json", body.to_string()).await
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: sending a signal to our own child process by its pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the binary with its data under `dir/data` and logs appended to `dir/stderr.log`;
/// returns once it printed its listening line.
pub fn spawn(dir: &Path, args: &[&str]) -> (Child, u16) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let prefix = "footfall-ingest listening on http://127.0.0.1:";
    let port = line
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| {
            panic!(
                "unexpected stdout {line:?}; stderr: {}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            )
        })
        .parse()
        .unwrap();
    (child, port)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every line of every `*.ndjson` and `*.ndjson.open` file, parsed; panics on a torn line.
pub fn read_lines(dir: &Path) -> Vec<Value> {
    data_files(dir)
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "torn file {p:?}");
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".ndjson") || name.ends_with(".ndjson.open") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn track(id: &str) -> Value {
    json!({"type":"track","event":"Clicked","anonymousId":"a1","messageId":id})
}

/// Sends raw bytes and reads until the server closes or `within` passes.
pub async fn raw_exchange(port: u16, request: &[u8], within: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
