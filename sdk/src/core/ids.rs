//! UUIDs from caller-supplied randomness: v4 for message and anonymous ids, v7 (time-ordered) for
//! session ids.
//!
//! The bytes come from the browser module's `crypto.getRandomValues` pool and the time from the
//! caller, so this needs neither `getrandom` nor uuid's `js` feature, and tests are deterministic.
//! Encoding goes through `encode_lower` into a stack buffer: no `core::fmt` in the wasm.

use alloc::string::String;
use uuid::Builder;

/// Length of a hyphenated UUID.
pub const LEN: usize = 36;

/// Appends a random (v4) UUID built from `random`.
pub fn push_v4(out: &mut String, random: [u8; 16]) {
    let id = Builder::from_random_bytes(random).into_uuid();
    let mut buf = [0u8; LEN];
    out.push_str(id.hyphenated().encode_lower(&mut buf));
}

/// Appends a time-ordered (v7) UUID for `now_ms` with 74 bits from `random`.
pub fn push_v7(out: &mut String, now_ms: u64, random: [u8; 10]) {
    let id = Builder::from_unix_timestamp_millis(now_ms, &random).into_uuid();
    let mut buf = [0u8; LEN];
    out.push_str(id.hyphenated().encode_lower(&mut buf));
}

/// A v4 UUID as a new `String`.
pub fn v4(random: [u8; 16]) -> String {
    let mut s = String::with_capacity(LEN);
    push_v4(&mut s, random);
    s
}

/// A v7 UUID as a new `String`.
pub fn v7(now_ms: u64, random: [u8; 10]) -> String {
    let mut s = String::with_capacity(LEN);
    push_v7(&mut s, now_ms, random);
    s
}

/// True for a lower-case hyphenated UUID: what we accept back from storage as an id.
pub fn is_uuid(s: &str) -> bool {
    s.len() == LEN
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn v4_has_version_and_variant_bits() {
        let id = v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let parsed = uuid::Uuid::parse_str(&v4([7; 16])).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert!(is_uuid(&id));
    }

    #[test]
    fn v7_is_time_ordered_and_carries_the_time() {
        let a = v7(1_700_000_000_000, [0xff; 10]);
        let b = v7(1_700_000_000_001, [0; 10]);
        assert!(a < b, "{a} < {b}");
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        // The first 48 bits are the millisecond timestamp.
        assert_eq!(&a[..13], "018bcfe5-6800");
        assert!(is_uuid(&b));
    }

    #[test]
    fn is_uuid_rejects_other_shapes() {
        for bad in [
            "",
            "not-a-uuid",
            "FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF",
            "ffffffffffff4fffbfffffffffffffffffff",
            "ffffffff-ffff-4fff-bfff-fffffffffffff",
            "gfffffff-ffff-4fff-bfff-ffffffffffff",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }
}
