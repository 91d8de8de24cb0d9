//! On-disk layout of the NDJSON streams and the crash-recovery steps on it.
//!
//! `{data_dir}/{source}/dt=YYYY-MM-DD/{HH}-{seq:04}.ndjson`, UTC. The file being written carries an
//! extra `.open` suffix and is renamed when it is finished (rotation, shutdown, or recovery at the
//! next start), so a reader that wants only complete files globs `*.ndjson`; one that wants
//! everything also reads `*.ndjson.open`. Every byte before a file's last `\n` is whole lines.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// Suffix of the file being written.
pub const OPEN_SUFFIX: &str = ".open";
/// Suffix of every data file.
pub const NDJSON_SUFFIX: &str = ".ndjson";

/// The UTC hour a file belongs to: `(dt=YYYY-MM-DD folder name, HH)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourKey {
    pub day: String,
    pub hour: u8,
}

impl HourKey {
    pub fn of(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        Self {
            day: format!(
                "dt={:04}-{:02}-{:02}",
                t.year(),
                u8::from(t.month()),
                t.day()
            ),
            hour: t.hour(),
        }
    }

    /// `*self == HourKey::of(t)` without formatting a day name: the writer asks this at every
    /// group commit (a `format!` there was ~1,400 instructions per single-message request).
    pub fn holds(&self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return *self == Self::of(t);
        }
        let mut day = *b"dt=0000-00-00";
        let digits = |out: &mut [u8], mut n: u32| {
            for d in out.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        digits(&mut day[3..7], year as u32);
        digits(&mut day[8..10], u32::from(u8::from(t.month())));
        digits(&mut day[11..13], u32::from(t.day()));
        self.hour == t.hour() && self.day.as_bytes() == day
    }
}

/// Creates a directory (and parents) readable by the owner only. A directory that already
/// existed with group or other access (a `./data` made by hand) is tightened to 0700 too, unless
/// it is a shared one (sticky, like `/tmp`) or not ours to change: then it is left as it is and
/// said so (the files in it are 0600 all the same).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let tightened =
        mode & 0o1000 == 0 && fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).is_ok();
    if tightened {
        tracing::warn!(path = %dir.display(), was = %format!("{mode:o}"),
            "made an existing data directory private (0700)");
    } else {
        tracing::warn!(path = %dir.display(), mode = %format!("{mode:o}"),
            "the data directory is open to others and was left so; its files are 0600");
    }
    Ok(())
}

/// Makes a directory entry change (create, rename) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Path of the `.open` file for `key` and `seq` under a source directory.
pub fn open_path(source_dir: &Path, key: &HourKey, seq: u32) -> PathBuf {
    source_dir.join(&key.day).join(format!(
        "{:02}-{:04}{NDJSON_SUFFIX}{OPEN_SUFFIX}",
        key.hour, seq
    ))
}

/// The finished name of an `.open` path.
pub fn finished_path(open: &Path) -> PathBuf {
    let s = open.to_string_lossy();
    PathBuf::from(s.strip_suffix(OPEN_SUFFIX).unwrap_or(&s).to_owned())
}

/// The next free sequence number for `key`'s hour in `day_dir` (0 when none exists).
pub fn next_seq(day_dir: &Path, hour: u8) -> io::Result<u32> {
    let prefix = format!("{hour:02}-");
    let mut next = 0;
    let entries = match fs::read_dir(day_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let seq = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('.').next())
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(seq) = seq {
            next = next.max(seq + 1);
        }
    }
    Ok(next)
}

/// Creates a new data file (0600) that must not already exist.
pub fn create_data_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Truncates anything after the last `\n` (a line torn by a crash mid-write).
/// Returns how many bytes were removed.
pub fn repair_torn_tail(path: &Path) -> io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    // Scan backwards in blocks for the last newline.
    const BLOCK: u64 = 64 * 1024;
    let mut end = len;
    let mut keep = 0;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(pos) = buf[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + pos as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < len {
        file.set_len(keep)?;
        file.sync_all()?;
    }
    Ok(len - keep)
}

/// What start-up recovery did to one left-over `.open` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub path: PathBuf,
    pub torn_bytes: u64,
}

/// Finishes every `.open` file under `source_dir` left by a previous run: torn tail truncated,
/// renamed to `.ndjson`, directory synced.
pub fn recover_open_files(source_dir: &Path) -> io::Result<Vec<Recovered>> {
    let mut out = Vec::new();
    let days = match fs::read_dir(source_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for day in days {
        let day = day?;
        if !day.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(day.path())? {
            let path = entry?.path();
            if path.to_string_lossy().ends_with(OPEN_SUFFIX) {
                out.push(finish_file(&path)?);
            }
        }
    }
    Ok(out)
}

/// Repairs and renames one `.open` file.
pub fn finish_file(open: &Path) -> io::Result<Recovered> {
    let torn_bytes = repair_torn_tail(open)?;
    fs::rename(open, finished_path(open))?;
    if let Some(dir) = open.parent() {
        sync_dir(dir)?;
    }
    Ok(Recovered {
        path: open.to_owned(),
        torn_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use time::macros::datetime;

    #[test]
    fn layout() {
        let key = HourKey::of(datetime!(2024-05-01 09:30 +02:00));
        assert_eq!(key.day, "dt=2024-05-01");
        assert_eq!(key.hour, 7);
        let p = open_path(Path::new("/d/web"), &key, 3);
        assert_eq!(p, Path::new("/d/web/dt=2024-05-01/07-0003.ndjson.open"));
        assert_eq!(
            finished_path(&p),
            Path::new("/d/web/dt=2024-05-01/07-0003.ndjson")
        );
    }

    #[test]
    fn holds_is_equality_with_of() {
        let times = [
            datetime!(2024-05-01 09:30 +02:00),
            datetime!(2024-05-01 07:59:59.999 UTC),
            datetime!(2024-05-01 08:00 UTC),
            datetime!(2024-12-31 23:00 -01:00),
            datetime!(0001-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59 UTC),
            datetime!(-0001-06-15 12:00 UTC),
        ];
        for a in times {
            for b in times {
                assert_eq!(
                    HourKey::of(a).holds(b),
                    HourKey::of(a) == HourKey::of(b),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn torn_tail_is_truncated_to_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let cases: [(&[u8], &[u8]); 5] = [
            (b"{\"a\":1}\n{\"b\":", b"{\"a\":1}\n"),
            (b"{\"a\":1}\n", b"{\"a\":1}\n"),
            (b"{\"a\"", b""),
            (b"", b""),
            (b"{}\n{}\n{\"x\":[1,2", b"{}\n{}\n"),
        ];
        for (input, want) in cases {
            fs::write(&path, input).unwrap();
            let removed = repair_torn_tail(&path).unwrap();
            assert_eq!(fs::read(&path).unwrap(), want);
            assert_eq!(removed as usize, input.len() - want.len());
        }
        // A tail longer than one scan block.
        let mut big = b"{}\n".to_vec();
        big.extend(vec![b'x'; 200 * 1024]);
        fs::write(&path, &big).unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap(), 200 * 1024);
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
    }

    #[test]
    fn recovery_finishes_open_files_and_seq_continues() {
        let dir = tempfile::tempdir().unwrap();
        let key = HourKey::of(datetime!(2024-05-01 07:00 UTC));
        let day = dir.path().join(&key.day);
        create_private_dir(&day).unwrap();
        assert_eq!(
            fs::metadata(&day).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(day.join("07-0000.ndjson"), b"{}\n").unwrap();
        let open = open_path(dir.path(), &key, 1);
        let mut f = create_data_file(&open).unwrap();
        assert_eq!(
            fs::metadata(&open).unwrap().permissions().mode() & 0o777,
            0o600
        );
        f.write_all(b"{\"ok\":1}\n{\"torn\"").unwrap();
        drop(f);
        assert_eq!(next_seq(&day, 7).unwrap(), 2);
        assert_eq!(next_seq(&day, 8).unwrap(), 0);

        let rec = recover_open_files(dir.path()).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].torn_bytes, 7);
        assert!(!open.exists());
        assert_eq!(fs::read(finished_path(&open)).unwrap(), b"{\"ok\":1}\n");
        assert_eq!(next_seq(&day, 7).unwrap(), 2);
    }
}
