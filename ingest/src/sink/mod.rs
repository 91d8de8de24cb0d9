//! The NDJSON sink: one writer per source, fed through a queue, acknowledging with group commit.
//!
//! Request handlers hand a request's serialized lines to `Sink::append`, which hashes their
//! messageIds into dedupe keys on the request's thread (`Lines::hash_ids`), queues them and waits
//! for the reply. Each source's writer (a dedicated OS thread: file I/O and `fdatasync` block)
//! takes every job queued at that moment, drops lines whose key is already in its window
//! (dedupe), writes the rest with `writev`, syncs once, and only then replies to all of them. So
//! a 2xx always means "on disk", concurrent requests never interleave partial lines (one writer),
//! and durability costs one `fdatasync` per group rather than per request.

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
use crate::dedupe::{DedupeKey, SourceKeys};
use crate::metrics::Metrics;
use writer::{Command, Writer};

/// A request's serialized lines (each ending in `\n`) one after the other in one buffer, and the
/// ids they are deduplicated on one after the other in another. One buffer, not one per line
/// (nor one per id): a batch's 100 live lines and ids missed malloc's per-thread cache, ~300
/// instructions of malloc and free each (callgrind).
#[derive(Debug, Default)]
pub struct Lines {
    bytes: Vec<u8>,
    ids: String,
    /// Where each line ends in `bytes` and its id in `ids` (the next ones start there).
    ends: Vec<(usize, usize)>,
    /// Each line's dedupe key, set by `Sink::append` on the request's thread (`hash_ids`).
    keys: Vec<DedupeKey>,
}

impl Lines {
    /// Room for `lines` lines of `bytes` bytes in all (a guess: the buffers grow as needed).
    pub fn with_capacity(lines: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ids: String::with_capacity(lines * 36),
            ends: Vec::with_capacity(lines),
            keys: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all the lines.
    pub fn byte_len(&self) -> usize {
        self.ends.last().map_or(0, |(end, _)| *end)
    }

    fn ids_len(&self) -> usize {
        self.ends.last().map_or(0, |(_, end)| *end)
    }

    /// The buffer the next line is written to, after the lines so far.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Sets the id of the next line (replacing one set before).
    pub fn set_id(&mut self, id: &str) {
        self.ids.truncate(self.ids_len());
        self.ids.push_str(id);
    }

    /// Ends the line written to `buffer` since the last one (ending in `\n`), with the id set.
    pub fn push(&mut self) {
        debug_assert_eq!(self.bytes.last(), Some(&b'\n'));
        self.ends.push((self.bytes.len(), self.ids.len()));
    }

    /// Drops what was written to `buffer`, and the id set, since the last line.
    pub fn discard(&mut self) {
        self.bytes.truncate(self.byte_len());
        self.ids.truncate(self.ids_len());
    }

    /// Each line's span of `bytes()`, and its id.
    pub fn iter(&self) -> impl Iterator<Item = (std::ops::Range<usize>, &str)> + '_ {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|((line, id), &(line_end, id_end))| {
                (line..line_end, self.ids.get(id..id_end).unwrap_or_default())
            })
    }

    /// The lines' bytes (`byte_len` of them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.byte_len()]
    }

    /// Hashes every line's id into its dedupe key. Done by `Sink::append`, on the request's
    /// thread, so the source's one writer thread, which every request of the source waits on,
    /// only looks keys up: hashing there was ~13 % of its CPU time at /v1/batch x100 (perf).
    pub fn hash_ids(&mut self, keys: &SourceKeys) {
        let mut ids = std::mem::take(&mut self.keys);
        ids.clear();
        ids.extend(self.iter().map(|(_, id)| keys.key(id)));
        self.keys = ids;
    }

    /// Each line's span of `bytes()`, and its key (`hash_ids` must have run).
    pub fn keyed(&self) -> impl Iterator<Item = (std::ops::Range<usize>, DedupeKey)> + '_ {
        debug_assert_eq!(self.keys.len(), self.len(), "hash_ids not run");
        self.iter()
            .zip(&self.keys)
            .map(|((line, _), &key)| (line, key))
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
    /// Each source's writer queue, and the keys its ids are hashed with.
    streams: HashMap<Arc<str>, (mpsc::Sender<Command>, SourceKeys)>,
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
            let keys = writer.keys();
            let handle = std::thread::Builder::new()
                .name(format!("sink-{source}"))
                .spawn(move || writer.run(rx))?;
            streams.insert(source.clone(), (tx, keys));
            threads.push(handle);
        }
        Ok(Self {
            streams,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a request's lines and waits until they are written (and synced with
    /// `--fsync always`). On error nothing of this request was acknowledged.
    pub async fn append(&self, source: &str, mut lines: Lines) -> Result<Outcome, SinkError> {
        let (tx, keys) = self
            .streams
            .get(source)
            .ok_or_else(|| SinkError::UnknownSource(source.to_owned()))?;
        lines.hash_ids(keys);
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
        for (tx, _) in self.streams.values() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_share_one_buffer_and_a_discarded_one_leaves_nothing() {
        let mut lines = Lines::with_capacity(2, 0);
        lines.buffer().extend_from_slice(b"{\"id\":\"a\"}\n");
        lines.set_id("a");
        lines.push();
        lines.buffer().extend_from_slice(b"{\"id\":\"half");
        lines.set_id("half");
        lines.discard();
        lines.set_id("x");
        lines.buffer().extend_from_slice(b"{\"id\":\"\\u0062\"}\n");
        lines.set_id("b");
        lines.push();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.bytes(), b"{\"id\":\"a\"}\n{\"id\":\"\\u0062\"}\n");
        assert_eq!(lines.byte_len(), lines.bytes().len());
        let spans: Vec<_> = lines.iter().collect();
        assert_eq!(spans, vec![(0..11, "a"), (11..27, "b")]);
    }
}
