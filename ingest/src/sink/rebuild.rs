//! Rebuilding a source's dedupe window from its newest files at start-up.
//!
//! The window lives in memory, so without this a client that resends after a crash (its request
//! was written but the process died before the 2xx left) would get its messages written twice.
//! At start, after the torn-tail repair has finished every `.open` file, the newest files are read
//! back, newest first, until the window's time span or its capacity is covered; each line's
//! `messageId` goes back into the window with its age taken from the line's `receivedAt`, so it
//! expires when it would have expired had the process never stopped.
//!
//! Cost is bounded by what the window holds anyway: at most `capacity` ids are kept (the newest),
//! files whose hour ended before the window are never opened, and only `messageId` and
//! `receivedAt` are kept from each line (the rest is skipped by the parser without allocating).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::files::NDJSON_SUFFIX;
use crate::dedupe::{DedupeKey, KeyHasher};
use crate::validate::parse_timestamp;

/// The two fields of a written line that dedupe needs.
#[derive(Deserialize)]
struct IdFields<'a> {
    #[serde(borrow, rename = "messageId")]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "receivedAt")]
    received_at: Option<Cow<'a, str>>,
}

/// What the rebuild found: ids oldest first, each with its age at `now`.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub ids: Vec<(DedupeKey, Duration)>,
    pub files_read: usize,
    pub lines_read: usize,
    /// Lines that were not a JSON object with a string `messageId` (not written by us).
    pub lines_skipped: usize,
}

/// One finished data file with its place in time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DataFile {
    /// (year, month, day, hour, seq): sorts in write order.
    order: (i32, u8, u8, u8, u32),
    path: PathBuf,
}

/// Reads the newest ids of `source` under `source_dir`: those received less than `window` before
/// `now`, at most `capacity` of them (the newest win). Call after `recover_open_files`.
pub fn recent_ids(
    source_dir: &Path,
    source: &str,
    hasher: &KeyHasher,
    window: Duration,
    capacity: usize,
    now: OffsetDateTime,
) -> io::Result<Rebuilt> {
    let mut out = Rebuilt::default();
    let Some(cutoff) =
        now.checked_sub(time::Duration::try_from(window).unwrap_or(time::Duration::MAX))
    else {
        return Ok(out);
    };
    let mut files = data_files(source_dir)?;
    files.sort_unstable_by(|a, b| b.cmp(a)); // newest first

    // Newest file first; within a file lines are in write order, so keep its last ones.
    let mut per_file: Vec<VecDeque<(DedupeKey, Duration)>> = Vec::new();
    let mut remaining = capacity;
    for file in files {
        let (y, m, d, h, _) = file.order;
        if remaining == 0 || hour_end(y, m, d, h).is_some_and(|end| end <= cutoff) {
            break;
        }
        let mut kept = VecDeque::new();
        let reader = BufReader::new(File::open(&file.path)?);
        out.files_read += 1;
        for line in reader.split(b'\n') {
            let line = line?;
            out.lines_read += 1;
            let Ok(fields) = serde_json::from_slice::<IdFields<'_>>(&line) else {
                out.lines_skipped += 1;
                continue;
            };
            let Some(id) = fields.message_id else {
                out.lines_skipped += 1;
                continue;
            };
            // No (or a foreign) receivedAt: count it as received now, the conservative choice.
            let received = fields
                .received_at
                .as_deref()
                .and_then(parse_timestamp)
                .unwrap_or(now);
            if received <= cutoff {
                continue;
            }
            let age = Duration::try_from(now - received).unwrap_or(Duration::ZERO);
            if kept.len() == remaining {
                kept.pop_front();
            }
            kept.push_back((hasher.key(source, &id), age));
        }
        remaining -= kept.len();
        per_file.push(kept);
    }
    out.ids = per_file.into_iter().rev().flatten().collect();
    Ok(out)
}

/// When the UTC hour of a file ends; `None` for a date that does not exist.
fn hour_end(year: i32, month: u8, day: u8, hour: u8) -> Option<OffsetDateTime> {
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let start = date.with_hms(hour, 0, 0).ok()?.assume_utc();
    start.checked_add(time::Duration::HOUR)
}

/// Every finished `dt=YYYY-MM-DD/HH-SEQ.ndjson` file under a source directory.
fn data_files(source_dir: &Path) -> io::Result<Vec<DataFile>> {
    let mut out = Vec::new();
    let days = match fs::read_dir(source_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for day in days {
        let day = day?;
        let name = day.file_name();
        let Some((y, m, d)) = name.to_str().and_then(parse_day) else {
            continue;
        };
        if !day.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(day.path())? {
            let entry = entry?;
            let name = entry.file_name();
            let Some((h, seq)) = name.to_str().and_then(parse_file_name) else {
                continue;
            };
            out.push(DataFile {
                order: (y, m, d, h, seq),
                path: entry.path(),
            });
        }
    }
    Ok(out)
}

/// `dt=YYYY-MM-DD` → (year, month, day).
fn parse_day(name: &str) -> Option<(i32, u8, u8)> {
    let rest = name.strip_prefix("dt=")?;
    let mut parts = rest.splitn(3, '-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    Some((y, m, d))
}

/// `HH-SEQ.ndjson` → (hour, seq). `.open` files are not read: recovery has finished them.
fn parse_file_name(name: &str) -> Option<(u8, u32)> {
    let stem = name.strip_suffix(NDJSON_SUFFIX)?;
    let (h, seq) = stem.split_once('-')?;
    Some((h.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn write(dir: &Path, rel: &str, ids: &[(&str, &str)]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text: String = ids
            .iter()
            .map(|(id, at)| {
                format!("{{\"event\":\"e\",\"messageId\":\"{id}\",\"receivedAt\":\"{at}\"}}\n")
            })
            .collect();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn newest_ids_within_the_window_oldest_first_with_their_age() {
        let dir = tempfile::tempdir().unwrap();
        let h = KeyHasher::default();
        write(
            dir.path(),
            "dt=2024-05-01/08-0000.ndjson",
            &[("too-old", "2024-05-01T08:10:00.000Z")],
        );
        write(
            dir.path(),
            "dt=2024-05-01/09-0000.ndjson",
            &[
                ("expired", "2024-05-01T09:00:00.000Z"),
                ("a", "2024-05-01T09:30:00.000Z"),
            ],
        );
        write(
            dir.path(),
            "dt=2024-05-01/09-0001.ndjson",
            &[("b", "2024-05-01T09:45:00.000Z")],
        );
        write(
            dir.path(),
            "dt=2024-05-01/10-0000.ndjson",
            &[("c", "2024-05-01T10:00:00.000Z")],
        );
        // Not ours: skipped, never fatal.
        fs::write(dir.path().join("dt=2024-05-01/notes.txt"), "x").unwrap();
        fs::write(
            dir.path().join("dt=2024-05-01/10-0001.ndjson"),
            "garbage\n{\"noid\":1}\n",
        )
        .unwrap();

        let now = datetime!(2024-05-01 10:15 UTC);
        let r = recent_ids(dir.path(), "web", &h, Duration::from_secs(3600), 100, now).unwrap();
        let want = [("a", 45), ("b", 30), ("c", 15)]
            .map(|(id, mins)| (h.key("web", id), Duration::from_secs(mins * 60)));
        assert_eq!(r.ids, want);
        // The 08 file ended before the window began: never opened.
        assert_eq!(r.files_read, 4);
        assert_eq!(r.lines_skipped, 2);

        // Capacity keeps the newest.
        let r = recent_ids(dir.path(), "web", &h, Duration::from_secs(3600), 2, now).unwrap();
        assert_eq!(r.ids, want[1..]);
    }

    #[test]
    fn escaped_ids_hash_like_the_writer_saw_them() {
        let dir = tempfile::tempdir().unwrap();
        let h = KeyHasher::default();
        let path = dir.path().join("dt=2024-05-01/10-0000.ndjson");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let line = serde_json::json!({"messageId": "q\"\u{e9}\n", "receivedAt": "2024-05-01T10:00:00.000Z"});
        fs::write(&path, format!("{line}\n")).unwrap();
        let r = recent_ids(
            dir.path(),
            "web",
            &h,
            Duration::from_secs(3600),
            10,
            datetime!(2024-05-01 10:00 UTC),
        )
        .unwrap();
        assert_eq!(r.ids, [(h.key("web", "q\"\u{e9}\n"), Duration::ZERO)]);
    }

    #[test]
    fn missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let r = recent_ids(
            &dir.path().join("nope"),
            "web",
            &KeyHasher::default(),
            Duration::from_secs(60),
            10,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(r.ids.is_empty());
    }
}
