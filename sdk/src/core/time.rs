//! Timestamps on the wire: ISO-8601 UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
//!
//! The release wasm gets them from the browser (`Host::iso`: the JS edge's
//! `Date.prototype.toISOString`, called once per second of a burst since it costs ~1 µs in V8).
//! Formatting in the wasm cost 171 B gzip of the download. The rules stay here: what instant a
//! message gets, and the clamp to [`MAX_MS`] (the ingest only accepts 4-digit years).
//! [`push_iso`] is the formatter native hosts use (tests), and the reference the browser's
//! output is checked against (sdk/tests/browser.rs). Civil-from-days is Howard Hinnant's
//! algorithm.

use alloc::string::String;

/// Latest instant we format: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: u64 = 253_402_300_799_999;

/// Appends the ISO-8601 UTC form of `ms` (clamped to [`MAX_MS`]).
pub fn push_iso(out: &mut String, ms: u64) {
    let ms = ms.min(MAX_MS);
    let days = ms / 86_400_000;
    let rem = ms % 86_400_000;
    let (y, m, d) = civil_from_days(days as i64);
    let mut buf = [0u8; 24];
    put(&mut buf[0..4], y as u64);
    buf[4] = b'-';
    put(&mut buf[5..7], m as u64);
    buf[7] = b'-';
    put(&mut buf[8..10], d as u64);
    buf[10] = b'T';
    put(&mut buf[11..13], rem / 3_600_000);
    buf[13] = b':';
    put(&mut buf[14..16], rem / 60_000 % 60);
    buf[16] = b':';
    put(&mut buf[17..19], rem / 1000 % 60);
    buf[19] = b'.';
    put(&mut buf[20..23], rem % 1000);
    buf[23] = b'Z';
    // SAFETY: `buf` holds ASCII digits and separators only.
    out.push_str(unsafe { core::str::from_utf8_unchecked(&buf) });
}

/// Writes `n` zero-padded into `dst` (most significant digit first).
fn put(dst: &mut [u8], mut n: u64) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// (year, month 1–12, day 1–31) for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn iso(ms: u64) -> String {
        let mut s = String::new();
        push_iso(&mut s, ms);
        s
    }

    #[test]
    fn known_instants() {
        let table: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (86_399_999, "1970-01-01T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
            (u64::MAX, "9999-12-31T23:59:59.999Z"),
        ];
        for &(ms, want) in table {
            assert_eq!(iso(ms), want, "{ms}");
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_reference_day_count(ms in 0u64..=MAX_MS) {
            // Reference: walk whole years and months from 1970 (slow but obviously right).
            let mut days = ms / 86_400_000;
            let mut y = 1970u64;
            let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
            loop {
                let len = if leap(y) { 366 } else { 365 };
                if days < len { break; }
                days -= len;
                y += 1;
            }
            let mut m = 1u64;
            let lens = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            for l in lens {
                if days < l { break; }
                days -= l;
                m += 1;
            }
            let s = iso(ms);
            proptest::prop_assert_eq!(&s[0..4], format!("{y:04}"));
            proptest::prop_assert_eq!(&s[5..7], format!("{m:02}"));
            proptest::prop_assert_eq!(&s[8..10], format!("{:02}", days + 1));
        }
    }
}
