//! Campaign (`utm_*`) parameters from a page's query string.
//!
//! The result is both the `context.campaign` JSON fragment and a small key (a 32-bit FNV-1a hash
//! of the values) that the session keeps: opening the page with a *different* campaign starts a
//! new session, and a hash keeps the stored state (possibly a cookie) small and bounded.

use super::json;
use alloc::string::String;
use alloc::vec::Vec;

/// utm parameter → Segment `context.campaign` field, in output order.
const FIELDS: [(&str, &str); 5] = [
    ("utm_campaign", "name"),
    ("utm_source", "source"),
    ("utm_medium", "medium"),
    ("utm_term", "term"),
    ("utm_content", "content"),
];

/// Longest value kept per field (bytes, cut on a char boundary): a hostile URL must not bloat
/// every message of the page.
const MAX_VALUE: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Campaign {
    /// `{"name":…,"source":…}` or empty when the query has no utm parameter.
    pub json: String,
    /// 0 when there is no campaign; otherwise a non-zero hash of the values.
    pub key: u32,
}

/// Parses `search` (with or without the leading `?`).
pub fn parse(search: &str) -> Campaign {
    let q = search.strip_prefix('?').unwrap_or(search);
    let mut values: [Option<String>; 5] = Default::default();
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !k.starts_with("utm_") {
            continue;
        }
        let k = decode(k);
        if let Some(i) = FIELDS.iter().position(|(p, _)| *p == k) {
            // First occurrence wins, like URLSearchParams.get.
            if let Some(slot @ None) = values.get_mut(i) {
                *slot = Some(decode(v));
            }
        }
    }
    from_values(core::array::from_fn(|i| values[i].as_deref()))
}

/// The campaign from the five utm values (`utm_campaign`, `utm_source`, `utm_medium`,
/// `utm_term`, `utm_content`; `None` when absent), already decoded. The wasm gets them from the
/// browser's URLSearchParams (percent-decoding there kept ~1.3 KB of UTF-8 validation out of the
/// wasm); [`parse`] is the same rule from a raw query string.
pub fn from_values(values: [Option<&str>; 5]) -> Campaign {
    let mut out = Campaign::default();
    let mut hash: u32 = 0x811c_9dc5;
    for (i, (v, field)) in values.iter().zip(FIELDS).enumerate() {
        let Some(v) = v else { continue };
        let v = clip(v);
        out.json.push(if out.json.is_empty() { '{' } else { ',' });
        json::push_key(&mut out.json, field.1);
        json::push_str(&mut out.json, v);
        for b in [i as u8].iter().chain(v.as_bytes()).chain(&[0xff]) {
            hash = (hash ^ *b as u32).wrapping_mul(0x0100_0193);
        }
    }
    if !out.json.is_empty() {
        out.json.push('}');
        out.key = hash.max(1);
    }
    out
}

/// The longest prefix of `s` of at most [`MAX_VALUE`] bytes, cut on a char boundary.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(MAX_VALUE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// `application/x-www-form-urlencoded` decoding: `+` → space, `%XX` → byte; a value that is not
/// UTF-8 once decoded becomes empty, a stray `%` is kept literally.
fn decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(c) = it.next() {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                // Decode only a complete `%XX`; otherwise keep the text as it was.
                let mut peek = it.clone();
                match (peek.next().and_then(hex), peek.next().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        it = peek;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
    }
    // Not UTF-8 once decoded: the value is dropped (no lossy-decoding machinery in the wasm).
    String::from_utf8(out).unwrap_or_default()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn from_values_is_parse_without_the_decoding() {
        let parsed = parse("?utm_source=news&x=1&utm_campaign=spring%20sale&utm_term=");
        let direct = from_values([Some("spring sale"), Some("news"), None, Some(""), None]);
        assert_eq!(parsed, direct);
        assert_eq!(from_values([None; 5]), Campaign::default());
        let long = "é".repeat(300);
        assert_eq!(
            from_values([Some(&long), None, None, None, None]),
            parse(&format!("utm_campaign={long}"))
        );
    }

    #[test]
    fn no_utm_means_no_campaign() {
        for q in ["", "?", "?a=1&b=2", "?utm=1&utmsource=x", "?utm_unknown=z"] {
            assert_eq!(parse(q), Campaign::default(), "{q}");
        }
    }

    #[test]
    fn maps_fields_and_decodes() {
        let c = parse("?utm_source=news%20letter&x=1&utm_campaign=spring+sale&utm_medium=email&utm_term=a%2Bb&utm_content=%E2%98%83");
        assert_eq!(
            c.json,
            r#"{"name":"spring sale","source":"news letter","medium":"email","term":"a+b","content":"☃"}"#
        );
        assert_ne!(c.key, 0);
        let v: serde_json::Value = serde_json::from_str(&c.json).unwrap();
        assert_eq!(v["content"], "☃");
    }

    #[test]
    fn key_tracks_values_not_order() {
        let a = parse("?utm_source=a&utm_medium=b");
        let b = parse("?utm_medium=b&utm_source=a&other=1");
        let c = parse("?utm_source=a&utm_medium=c");
        // Moving a value to another field must change the key too.
        let d = parse("?utm_source=b&utm_medium=a");
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
    }

    #[test]
    fn hostile_values_stay_bounded_and_valid() {
        let long = "x".repeat(10_000);
        let c = parse(&format!(
            "utm_source={long}&utm_term=%ZZ%&utm_medium=%FF%FE\"\\"
        ));
        let v: serde_json::Value = serde_json::from_str(&c.json).unwrap();
        assert_eq!(v["source"].as_str().unwrap().len(), MAX_VALUE);
        assert_eq!(v["term"], "%ZZ%");
        assert_eq!(v["medium"], "", "not UTF-8 once decoded: dropped");
        assert!(c.json.len() < 400);
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(parse("utm_source=a&utm_source=b").json, r#"{"source":"a"}"#);
    }
}
