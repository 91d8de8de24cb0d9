//! Tiny JSON writer: string escaping and integers, appended to a `String`.
//!
//! The wasm build must not carry `serde_json` or `core::fmt` (see SETUP.md size facts), so the
//! few pieces of JSON the SDK writes itself (ids, names, page fields, batch envelope) go through
//! here. Objects the page hands us (properties, traits) are serialized by the browser's
//! `JSON.stringify` and spliced in as-is.

use alloc::string::String;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal (with the quotes).
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries. `get` rather than
        // indexing: no panic path (and no `core::fmt`) in the wasm.
        // SAFETY: `start` and `i` are 0, len, or next to an ASCII byte: char boundaries.
        out.push_str(unsafe { s.get_unchecked(start..i) });
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    // SAFETY: as above.
    out.push_str(unsafe { s.get_unchecked(start..) });
    out.push('"');
}

/// Appends a decimal unsigned integer (the higher digits first, by recursion: ≤ 20 deep; two
/// loops over a digit buffer were bigger wasm).
pub fn push_u64(out: &mut String, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    out.push((b'0' + (n % 10) as u8) as char);
}

/// Appends a decimal signed integer.
pub fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Parses a decimal `u64` with no sign, no spaces; `None` on anything else or overflow.
pub fn parse_u64(s: &str) -> Option<u64> {
    // 19 digits never overflow; 20 do when above u64::MAX, which for equal lengths is a byte
    // comparison. No checked_mul: on wasm32 it is a 128-bit multiply (`__multi3`).
    if s.is_empty() || s.len() > 20 || (s.len() == 20 && s > "18446744073709551615") {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.wrapping_mul(10).wrapping_add((b - b'0') as u64);
    }
    Some(n)
}

/// True when `s` looks like one JSON object as produced by `JSON.stringify` or by us: starts with
/// `{`, ends with `}` and holds no raw newline. A cheap shape check for data read back from storage.
pub fn looks_like_object(s: &str) -> bool {
    let b = s.as_bytes();
    // `all`, not `contains`: the latter pulls memchr (~400 bytes) into the wasm.
    b.len() >= 2 && b[0] == b'{' && b[b.len() - 1] == b'}' && b.iter().all(|&c| c != b'\n')
}

/// `s` split at the ASCII byte `sep`, into at most `n` pieces (the last one holds the rest, as
/// `str::splitn`). Cutting at an ASCII byte always leaves valid UTF-8 pieces. Byte-level
/// helpers like this one (and `str::trim_ascii`) keep core's `char` pattern machinery (memchr,
/// char searchers, Unicode whitespace: ~1.5 KB of wasm) out of the binary.
pub fn split(s: &str, sep: u8, n: usize) -> impl Iterator<Item = &str> {
    s.as_bytes()
        .splitn(n, move |&b| b == sep)
        // SAFETY: `sep` is ASCII (all callers), so every piece starts and ends on a char boundary.
        .map(|p| unsafe { core::str::from_utf8_unchecked(p) })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut o = String::new();
        push_str(&mut o, s);
        o
    }

    #[test]
    fn byte_split_matches_str_splitn() {
        for s in ["", "a", "a|b", "|a||b|", "é|ü|☃", "x|y|z|w"] {
            for n in 1..5 {
                let ours: Vec<&str> = split(s, b'|', n).collect();
                let std: Vec<&str> = s.splitn(n, '|').collect();
                assert_eq!(ours, std, "{s:?} {n}");
            }
            let all: Vec<&str> = split(s, b'|', usize::MAX).collect();
            assert_eq!(all, s.split('|').collect::<Vec<_>>());
        }
    }

    #[test]
    fn escapes_specials_and_controls() {
        assert_eq!(esc("plain"), "\"plain\"");
        assert_eq!(esc("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(esc("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
        assert_eq!(esc("\u{0}\u{1f}"), "\"\\u0000\\u001f\"");
        assert_eq!(esc("héllo ☃ 𝄞"), "\"héllo ☃ 𝄞\"");
        assert_eq!(esc(""), "\"\"");
    }

    #[test]
    fn escaped_output_is_valid_json_for_any_string() {
        for s in ["\u{7f}", "a\u{2028}b", "\"\"\"", "\\", "x\u{0}y\"z\n"] {
            let v: serde_json::Value = serde_json::from_str(&esc(s)).unwrap();
            assert_eq!(v.as_str().unwrap(), s);
        }
    }

    #[test]
    fn integers() {
        let mut o = String::new();
        push_u64(&mut o, 0);
        o.push(' ');
        push_u64(&mut o, u64::MAX);
        o.push(' ');
        push_i64(&mut o, -42);
        o.push(' ');
        push_i64(&mut o, i64::MIN);
        assert_eq!(o, "0 18446744073709551615 -42 -9223372036854775808");
    }

    #[test]
    fn parse_u64_is_strict() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "1e3",
            "abc",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_u64_reads_every_u64_and_nothing_above(n: u64, extra in 0u64..1000) {
            proptest::prop_assert_eq!(parse_u64(&n.to_string()), Some(n));
            let above = u128::from(u64::MAX) + 1 + u128::from(extra);
            proptest::prop_assert_eq!(parse_u64(&above.to_string()), None);
        }

        #[test]
        fn escape_round_trips(s in "\\PC*|[\\x00-\\x20\"\\\\]*") {
            let v: serde_json::Value = serde_json::from_str(&esc(&s)).unwrap();
            proptest::prop_assert_eq!(v.as_str().unwrap(), s.as_str());
        }
    }
}
