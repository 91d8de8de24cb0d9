//! One source's writer thread: group commit, dedupe, rotation.
//!
//! The thread owns the open file and the dedupe window, so "is this id written?" and "write it"
//! happen in one place, in order, with no lock: a group's ids enter the window as it is checked
//! (so a duplicate queued in the same group is caught by the same lookup) and leave it again if
//! the group's write (or sync) fails, before anything is acknowledged. A failed write is cut
//! back to the file's previous length so no unacknowledged partial line stays behind; if even
//! that fails the file is abandoned and finished by the same torn-tail repair the start-up
//! recovery uses.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::files::{self, HourKey};
use super::{rebuild, Lines, Outcome, RebuildStats, SinkError, SinkOptions};
use crate::config::FsyncMode;
use crate::dedupe::{DedupeWindow, KeyHasher, SourceKeys};
use crate::metrics::Metrics;

/// Most bytes one group commit gathers before writing (bounds the buffer, not the latency).
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// How often an idle writer wakes to rotate on the hour.
const IDLE_TICK: Duration = Duration::from_secs(1);

pub enum Command {
    Append {
        lines: Lines,
        reply: oneshot::Sender<Ack>,
    },
    Shutdown,
}

/// A request's answer, with its lines handed back: they were allocated on the request's runtime
/// thread, and freed there they go back to that thread's malloc cache. Freed here, every one
/// went through glibc's slow path into the worker's arena (taking its lock), and the worker's
/// next allocations of that size missed its cache.
#[derive(Debug)]
pub struct Ack {
    pub result: Result<Outcome, SinkError>,
    pub lines: Lines,
}

struct OpenFile {
    file: File,
    path: PathBuf,
    key: HourKey,
    size: u64,
}

pub struct Writer {
    source: Arc<str>,
    dir: PathBuf,
    fsync: FsyncMode,
    rotate_bytes: u64,
    current: Option<OpenFile>,
    dedupe: DedupeWindow,
    hasher: KeyHasher,
    metrics: Arc<Metrics>,
}

type Job = (Lines, oneshot::Sender<Ack>);

impl Writer {
    pub fn new(
        source: Arc<str>,
        dir: PathBuf,
        options: &SinkOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            source,
            dir,
            fsync: options.fsync,
            rotate_bytes: options.rotate_bytes,
            current: None,
            dedupe: DedupeWindow::new(options.dedupe_window, options.dedupe_capacity),
            hasher: KeyHasher::default(),
            metrics,
        }
    }

    /// The keys this writer's ids are hashed with (`Lines::hash_ids`, before `Command::Append`).
    pub fn keys(&self) -> SourceKeys {
        self.hasher.source(&self.source)
    }

    /// Refills the dedupe window from the newest files under `dir` (call after recovery, before
    /// `run`).
    pub fn rebuild_dedupe(
        &mut self,
        dir: &std::path::Path,
        options: &SinkOptions,
    ) -> std::io::Result<RebuildStats> {
        let r = rebuild::recent_ids(
            dir,
            &self.source,
            &self.hasher,
            options.dedupe_window,
            options.dedupe_capacity,
            OffsetDateTime::now_utc(),
        )?;
        let ids = self.dedupe.restore(r.ids, Instant::now());
        Ok(RebuildStats {
            ids,
            files_read: r.files_read,
            lines_read: r.lines_read,
            lines_skipped: r.lines_skipped,
        })
    }

    pub fn run(mut self, rx: Receiver<Command>) {
        let mut stop = false;
        while !stop {
            let first = match rx.recv_timeout(IDLE_TICK) {
                Ok(Command::Append { lines, reply }) => (lines, reply),
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.rotate_if_hour_changed(OffsetDateTime::now_utc());
                    continue;
                }
            };
            // Group commit: everything queued right now goes into this one write + sync.
            let mut bytes = first.0.byte_len();
            let mut jobs = vec![first];
            while bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(Command::Append { lines, reply }) => {
                        bytes += lines.byte_len();
                        jobs.push((lines, reply));
                    }
                    Ok(Command::Shutdown) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(jobs);
        }
        self.finish_current(true);
    }

    fn commit(&mut self, jobs: Vec<Job>) {
        let now = Instant::now();
        // The lines are written straight from the requests' buffers (writev), not copied into
        // one group buffer first: a group of 1,000-message batches was a second copy of up to
        // 16 MiB held on top of the requests' own (peak RSS, bench/README.md "Memory"). One slice
        // per line even where lines are adjacent in a request's buffer: on this host's kernel
        // (6.18, ext4) slices of more than ~4 KiB made `writev` several times slower, and whole
        // runs halved /v1/batch x1000 throughput (bench/README.md "One slice per line").
        let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(jobs.iter().map(|j| j.0.len()).sum());
        let mut total = 0;
        // The ids this group added to the window: taken back out if its write fails.
        let mut inserted = 0;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for (lines, _) in &jobs {
            let mut outcome = Outcome::default();
            let bytes = lines.bytes();
            for (line, key) in lines.keyed() {
                // One lookup for both: written within the window, or earlier in this group.
                if !self.dedupe.insert(key, now) {
                    outcome.deduplicated += 1;
                } else {
                    inserted += 1;
                    total += line.len();
                    parts.push(IoSlice::new(&bytes[line]));
                    outcome.written += 1;
                }
            }
            outcomes.push(outcome);
        }
        let result = if total == 0 {
            Ok(())
        } else {
            self.append(&mut parts, total, OffsetDateTime::now_utc())
        };
        drop(parts);
        match result {
            Ok(()) => {
                self.metrics.commit(jobs.len() as u64);
                // Counted here, not by the handler: a line written for a client that hung up
                // before its ack is still on disk (and will be deduplicated when resent).
                let written: usize = outcomes.iter().map(|o| o.written).sum();
                self.metrics.accepted(written as u64);
                self.metrics
                    .deduplicated((outcomes.iter().map(|o| o.deduplicated).sum::<usize>()) as u64);
                for ((lines, reply), outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = reply.send(Ack {
                        result: Ok(outcome),
                        lines,
                    });
                }
            }
            Err(e) => {
                // Not written: a retry of these ids must be written, not deduplicated.
                self.dedupe.forget_newest(inserted);
                self.metrics.write_error();
                tracing::error!(source = %self.source, error = %e, "write failed; nothing acknowledged");
                let err = SinkError::Io(e.to_string());
                for (lines, reply) in jobs {
                    let _ = reply.send(Ack {
                        result: Err(err.clone()),
                        lines,
                    });
                }
            }
        }
    }

    /// Writes `parts` (whole lines, `len` bytes in all) to the current file, syncing per
    /// `--fsync`. On failure the file is cut back to where it was: nothing of them stays.
    fn append(
        &mut self,
        parts: &mut [IoSlice<'_>],
        len: usize,
        now: OffsetDateTime,
    ) -> std::io::Result<()> {
        let rotate = match &self.current {
            Some(f) => !f.key.holds(now) || (f.size > 0 && f.size + len as u64 > self.rotate_bytes),
            None => false,
        };
        if rotate {
            self.finish_current(false);
        }
        if self.current.is_none() {
            self.current = Some(self.create_file(HourKey::of(now))?);
        }
        let Some(f) = self.current.as_mut() else {
            unreachable!("a file was just opened")
        };
        let before = f.size;
        let started = Instant::now();
        let written = write_all_vectored(&mut f.file, parts);
        self.metrics.write_latency.observe(started.elapsed());
        let synced = written.and_then(|()| {
            if self.fsync == FsyncMode::Always {
                let started = Instant::now();
                let r = f.file.sync_data();
                self.metrics.fsync_latency.observe(started.elapsed());
                r
            } else {
                Ok(())
            }
        });
        match synced {
            Ok(()) => {
                f.size += len as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the unacknowledged bytes back out; if the file cannot even be truncated,
                // stop using it and let the torn-tail repair finish it.
                if f.file
                    .set_len(before)
                    .and_then(|()| f.file.sync_data())
                    .is_err()
                {
                    let path = f.path.clone();
                    self.current = None;
                    if let Err(e) = files::finish_file(&path) {
                        tracing::error!(path = %path.display(), error = %e, "could not finish a failed file; it is repaired at the next start");
                    }
                }
                Err(e)
            }
        }
    }

    fn create_file(&self, key: HourKey) -> std::io::Result<OpenFile> {
        let day_dir = self.dir.join(&key.day);
        files::create_private_dir(&day_dir)?;
        let seq = files::next_seq(&day_dir, key.hour)?;
        let path = files::open_path(&self.dir, &key, seq);
        let file = files::create_data_file(&path)?;
        if self.fsync == FsyncMode::Always {
            // The new name must survive a crash as surely as the lines written into it.
            files::sync_dir(&day_dir)?;
            files::sync_dir(&self.dir)?;
        }
        tracing::debug!(path = %path.display(), "opened data file");
        Ok(OpenFile {
            file,
            path,
            key,
            size: 0,
        })
    }

    fn rotate_if_hour_changed(&mut self, now: OffsetDateTime) {
        if self.current.as_ref().is_some_and(|f| !f.key.holds(now)) {
            self.finish_current(false);
        }
    }

    /// Syncs (always on shutdown, else per `--fsync`) and renames the open file to `.ndjson`.
    fn finish_current(&mut self, shutting_down: bool) {
        let Some(f) = self.current.take() else { return };
        let sync = shutting_down || self.fsync == FsyncMode::Always;
        let result = (|| {
            if sync {
                f.file.sync_all()?;
            }
            drop(f.file);
            let done = files::finished_path(&f.path);
            std::fs::rename(&f.path, &done)?;
            if sync {
                if let Some(dir) = done.parent() {
                    files::sync_dir(dir)?;
                }
            }
            Ok::<_, std::io::Error>(done)
        })();
        match result {
            Ok(done) => tracing::debug!(path = %done.display(), "finished data file"),
            Err(e) => {
                tracing::error!(path = %f.path.display(), error = %e, "could not finish data file")
            }
        }
    }
}

/// `write_all` over several buffers: `writev` takes at most IOV_MAX of them and may write less
/// than asked, so go on from where it stopped until everything is written or it fails.
fn write_all_vectored(file: &mut File, mut parts: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !parts.is_empty() {
        match file.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn options(dir: &std::path::Path, rotate_bytes: u64) -> SinkOptions {
        SinkOptions {
            data_dir: dir.to_owned(),
            fsync: FsyncMode::Always,
            rotate_bytes,
            dedupe_window: Duration::from_secs(3600),
            dedupe_capacity: 1000,
        }
    }

    /// A writer for source `web` straight under `dir`, with fresh metrics.
    fn writer(dir: &std::path::Path, rotate_bytes: u64) -> Writer {
        Writer::new(
            "web".into(),
            dir.to_owned(),
            &options(dir, rotate_bytes),
            Arc::new(Metrics::default()),
        )
    }

    /// A request's lines of these ids, keyed as `Sink::append` keys them.
    fn lines<S: AsRef<str>>(keys: &SourceKeys, ids: &[S]) -> Lines {
        let mut lines = Lines::default();
        for id in ids {
            let id = id.as_ref();
            writeln!(lines.buffer(), "{{\"messageId\":\"{id}\"}}").unwrap();
            lines.set_id(id);
            lines.push();
        }
        lines.hash_ids(keys);
        lines
    }

    fn all_files(dir: &std::path::Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for day in std::fs::read_dir(dir).unwrap() {
            let day = day.unwrap().path();
            for f in std::fs::read_dir(&day).unwrap() {
                let p = f.unwrap().path();
                let name = format!(
                    "{}/{}",
                    day.file_name().unwrap().to_string_lossy(),
                    p.file_name().unwrap().to_string_lossy()
                );
                out.push((name, std::fs::read_to_string(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    fn send(tx: &mpsc::Sender<Command>, lines: Lines) -> oneshot::Receiver<Ack> {
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Append { lines, reply }).unwrap();
        rx
    }

    #[test]
    fn group_commit_dedupes_within_and_across_groups_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        // Each line is 19 bytes and files rotate past 40: the first group (57 bytes) overshoots
        // in one file because a group is never split; the next group starts a new file.
        let w = Writer::new(
            "web".into(),
            dir.path().to_owned(),
            &options(dir.path(), 40),
            metrics.clone(),
        );
        let (tx, rx) = mpsc::channel();
        let keys = w.keys();
        // Queue three jobs before the writer starts: they form one group.
        let a = send(&tx, lines(&keys, &["m1", "m2"]));
        let b = send(&tx, lines(&keys, &["m2", "m3"]));
        let c = send(&tx, lines(&keys, &["m1"]));
        let handle = std::thread::spawn(move || w.run(rx));
        assert_eq!(
            a.blocking_recv().unwrap().result.unwrap(),
            Outcome {
                written: 2,
                deduplicated: 0
            }
        );
        assert_eq!(
            b.blocking_recv().unwrap().result.unwrap(),
            Outcome {
                written: 1,
                deduplicated: 1
            }
        );
        assert_eq!(
            c.blocking_recv().unwrap().result.unwrap(),
            Outcome {
                written: 0,
                deduplicated: 1
            }
        );
        // A later group: m3 is remembered, m4 is new and does not fit in the current file.
        let d = send(&tx, lines(&keys, &["m3", "m4"]));
        assert_eq!(
            d.blocking_recv().unwrap().result.unwrap(),
            Outcome {
                written: 1,
                deduplicated: 1
            }
        );
        tx.send(Command::Shutdown).unwrap();
        handle.join().unwrap();

        let files = all_files(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files[0].0.ends_with("-0000.ndjson"), "{files:?}");
        assert!(files[1].0.ends_with("-0001.ndjson"), "{files:?}");
        let text: String = files.iter().map(|f| f.1.as_str()).collect();
        let ids: Vec<&str> = text.lines().collect();
        assert_eq!(ids.len(), 4);
        for id in ["m1", "m2", "m3", "m4"] {
            assert_eq!(text.matches(&format!("\"{id}\"")).count(), 1, "{id}");
        }
        assert!(metrics.fsync_latency.count() >= 2);
    }

    #[test]
    fn rotates_on_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1 << 20);
        let t = time::macros::datetime!(2024-05-01 10:59:59 UTC);
        for (line, at) in [
            (&b"{\"a\":1}\n"[..], t),
            (b"{\"a\":2}\n", t + time::Duration::seconds(2)),
        ] {
            w.append(&mut [IoSlice::new(line)], line.len(), at).unwrap();
        }
        // Still open; an idle tick in the next hour finishes it.
        w.rotate_if_hour_changed(t + time::Duration::hours(2));
        assert!(w.current.is_none());
        let files = all_files(dir.path());
        assert_eq!(
            files,
            vec![
                (
                    "dt=2024-05-01/10-0000.ndjson".to_owned(),
                    "{\"a\":1}\n".to_owned()
                ),
                (
                    "dt=2024-05-01/11-0000.ndjson".to_owned(),
                    "{\"a\":2}\n".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn failed_write_acknowledges_nothing_and_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut w = Writer::new(
            "web".into(),
            dir.path().join("missing-parent/x"),
            &options(dir.path(), 1 << 20),
            metrics.clone(),
        );
        // Make the source directory impossible to create: a file sits where its parent should be.
        std::fs::write(dir.path().join("missing-parent"), b"").unwrap();
        let (reply, rx) = oneshot::channel();
        w.commit(vec![(lines(&w.keys(), &["m1"]), reply)]);
        assert!(matches!(
            rx.blocking_recv().unwrap().result,
            Err(SinkError::Io(_))
        ));
        assert!(w.dedupe.is_empty());
        assert!(metrics
            .render()
            .contains("footfall_sink_write_errors_total 1"));
    }

    #[test]
    fn a_group_of_more_lines_than_iov_max_is_written_whole_and_in_order() {
        // writev takes at most 1,024 buffers a call: 3 requests of 1,500 lines, each line sent
        // twice (so each written one is a run of its own, a slice), need several.
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), 1 << 30);
        let mut jobs = Vec::new();
        let mut replies = Vec::new();
        for r in 0..3 {
            let (reply, rx) = oneshot::channel();
            let ids: Vec<String> = (0..1500)
                .flat_map(|i| [format!("r{r}-{i}"), format!("r{r}-{i}")])
                .collect();
            jobs.push((lines(&w.keys(), &ids), reply));
            replies.push(rx);
        }
        w.commit(jobs);
        for rx in replies {
            let outcome = rx.blocking_recv().unwrap().result.unwrap();
            assert_eq!((outcome.written, outcome.deduplicated), (1500, 1500));
        }
        let files = all_files(dir.path());
        assert_eq!(files.len(), 1);
        let expected: String = (0..3)
            .flat_map(|r| (0..1500).map(move |i| format!("{{\"messageId\":\"r{r}-{i}\"}}\n")))
            .collect();
        assert_eq!(files[0].1, expected);
    }
}
