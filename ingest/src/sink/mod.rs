//! The NDJSON sink: one writer per source, fed through a queue, acknowledging with group commit.
//!
//! Request handlers hand a request's serialized lines to `Sink::append` and wait for the reply.
//! Each source's writer (a dedicated OS thread: file I/O and `fdatasync` block) takes every job
//! queued at that moment, drops lines whose messageId it has already written (dedupe), writes
//! the rest with one `write`, syncs once, and only then replies to all of them. So a 2xx always
//! means "on disk", concurrent requests never interleave partial lines (one writer), and
//! durability costs one `fdatasync` per group rather than per request.

mod files;
mod rebuild;
mod writer;

pub use files::{
    finish_file, finished_path, next_seq, open_path, recover_open_files, repair_torn_tail, HourKey,
    Recovered, NDJSON_SUFFIX, OPEN_SUFFIX,
};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::FsyncMode;
use crate::metrics::Metrics;
use writer::{Command, Writer};

/// One message's serialized line (ending in `\n`) and the id it is deduplicated on.
#[derive(Debug, Clone)]
pub struct Line {
    pub message_id: MessageId,
    pub bytes: Vec<u8>,
}

impl Line {
    pub fn message_id(&self) -> &str {
        self.message_id.get(&self.bytes)
    }
}

/// A line's message id: where the line has it, or, when it is written there with escapes, its
/// own text. Most ids are the former, so a line costs one allocation, not two (a freed id was
/// ~300 instructions of malloc and free per batch message, callgrind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageId {
    /// Bytes `start..end` of the line: the text between the quotes of a JSON string without
    /// escapes, which is the id.
    InLine {
        start: usize,
        end: usize,
    },
    Owned(String),
}

impl MessageId {
    /// The id of `line` (the line it was made for).
    pub fn get<'l>(&'l self, line: &'l [u8]) -> &'l str {
        match self {
            MessageId::InLine { start, end } => {
                let text = line.get(*start..*end).unwrap_or_default();
                // A span of text the line pipeline wrote from `str`s, cut at quotes.
                std::str::from_utf8(text).unwrap_or_default()
            }
            MessageId::Owned(s) => s,
        }
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId::Owned(s.to_owned())
    }
}

/// What happened to one request's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub written: usize,
    pub deduplicated: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(String),
    #[error("the sink is shut down")]
    Closed,
    #[error("no stream for source {0:?}")]
    UnknownSource(String),
}

/// Sink settings (a subset of `Settings`, so tests can build one directly).
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub data_dir: PathBuf,
    pub fsync: FsyncMode,
    pub rotate_bytes: u64,
    pub dedupe_window: Duration,
    pub dedupe_capacity: usize,
}

/// What the start-up rebuild of one source's dedupe window found.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildStats {
    pub ids: usize,
    pub files_read: usize,
    pub lines_read: usize,
    pub lines_skipped: usize,
}

/// Handle to every source's writer.
#[derive(Debug)]
pub struct Sink {
    streams: HashMap<Arc<str>, mpsc::Sender<Command>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Sink {
    /// Creates the directories, finishes files left `.open` by a previous run (repairing torn
    /// last lines, logged), rebuilds each source's dedupe window from its newest files and
    /// starts one writer per source.
    pub fn open(
        options: &SinkOptions,
        sources: &[Arc<str>],
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        files::create_private_dir(&options.data_dir)?;
        let mut streams = HashMap::new();
        let mut threads = Vec::new();
        for source in sources {
            let dir = options.data_dir.join(&**source);
            files::create_private_dir(&dir)?;
            for rec in recover_open_files(&dir)? {
                if rec.torn_bytes > 0 {
                    tracing::warn!(path = %rec.path.display(), torn_bytes = rec.torn_bytes,
                        "truncated a torn last line left by a crash");
                } else {
                    tracing::info!(path = %rec.path.display(), "finished a file left open by the previous run");
                }
            }
            let mut writer = Writer::new(source.clone(), dir.clone(), options, metrics.clone());
            // Before the first request can arrive: a resend right after a restart must already
            // find the ids written before it.
            let started = std::time::Instant::now();
            let rebuilt = writer.rebuild_dedupe(&dir, options)?;
            tracing::info!(
                source = %source,
                ids = rebuilt.ids,
                files = rebuilt.files_read,
                lines = rebuilt.lines_read,
                skipped_lines = rebuilt.lines_skipped,
                ms = started.elapsed().as_millis() as u64,
                "dedupe window rebuilt from the newest files"
            );
            let (tx, rx) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name(format!("sink-{source}"))
                .spawn(move || writer.run(rx))?;
            streams.insert(source.clone(), tx);
            threads.push(handle);
        }
        Ok(Self {
            streams,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a request's lines and waits until they are written (and synced with
    /// `--fsync always`). On error nothing of this request was acknowledged.
    pub async fn append(&self, source: &str, lines: Vec<Line>) -> Result<Outcome, SinkError> {
        let tx = self
            .streams
            .get(source)
            .ok_or_else(|| SinkError::UnknownSource(source.to_owned()))?;
        let (reply, rx) = oneshot::channel();
        // The queue is unbounded, but every entry is a request waiting for its reply, so its
        // length is bounded by the connection cap (one request in flight per connection).
        tx.send(Command::Append { lines, reply })
            .map_err(|_| SinkError::Closed)?;
        let ack = rx.await.map_err(|_| SinkError::Closed)?;
        // Freed here, on the thread that allocated them (see `Ack`).
        drop(ack.lines);
        ack.result
    }

    /// Stops every writer after the jobs already queued: each syncs and renames its open file.
    /// Blocks until they are done; call from `spawn_blocking` in async code.
    pub fn shutdown(&self) {
        for tx in self.streams.values() {
            let _ = tx.send(Command::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropping the senders lets each writer finish its file; join so that happens before exit.
        self.shutdown();
    }
}
