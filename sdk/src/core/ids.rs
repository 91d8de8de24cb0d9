//! UUIDs from caller-supplied randomness: v4 for message and anonymous ids, v7 (time-ordered) for
//! session ids.
//!
//! The bytes come from the browser module's `crypto.getRandomValues` pool and the time from the
//! caller, so this needs neither `getrandom` nor uuid's `js` feature, and tests are deterministic.
//! Encoded by hand (no `core::fmt`, no uuid crate in the wasm); tests compare with the `uuid` crate.

use alloc::string::String;

/// Length of a hyphenated UUID.
pub const LEN: usize = 36;

/// Appends the 16 bytes as a lower-case hyphenated UUID (the `uuid` crate's encoder cost ~1 KB
/// of wasm with its builders; the tests check ours against it).
fn push_hex(out: &mut String, b: [u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 15) as usize] as char);
    }
}

/// Appends a random (v4) UUID built from `random` (RFC 9562: version 4, variant 10).
pub fn push_v4(out: &mut String, random: [u8; 16]) {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    push_hex(out, b);
}

/// Appends a time-ordered (v7) UUID for `now_ms` with 74 bits of `random` (its last 10 bytes;
/// RFC 9562: 48-bit big-endian Unix milliseconds, version 7, 12 random bits, variant 10, 62
/// random bits). 16 bytes in, as for v4: one random draw size for the caller.
pub fn push_v7(out: &mut String, now_ms: u64, random: [u8; 16]) {
    let mut b = random;
    let t = now_ms.to_be_bytes();
    b[0] = t[2];
    b[1] = t[3];
    b[2] = t[4];
    b[3] = t[5];
    b[4] = t[6];
    b[5] = t[7];
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    push_hex(out, b);
}

/// A v4 UUID as a new `String`.
pub fn v4(random: [u8; 16]) -> String {
    let mut s = String::with_capacity(LEN);
    push_v4(&mut s, random);
    s
}

/// A v7 UUID as a new `String`.
pub fn v7(now_ms: u64, random: [u8; 16]) -> String {
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
        let a = v7(1_700_000_000_000, [0xff; 16]);
        let b = v7(1_700_000_000_001, [0; 16]);
        assert!(a < b, "{a} < {b}");
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        // The first 48 bits are the millisecond timestamp.
        assert_eq!(&a[..13], "018bcfe5-6800");
        assert!(is_uuid(&b));
    }

    #[test]
    fn same_bytes_as_the_uuid_crate() {
        for seed in 0u8..=255 {
            let r16: [u8; 16] =
                core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17));
            let r16b: [u8; 16] = core::array::from_fn(|i| r16[i] ^ 0xa5);
            let r10: [u8; 10] = core::array::from_fn(|i| r16b[6 + i]);
            let now = 1_700_000_000_000 + seed as u64 * 123_456_789;
            let want4 = uuid::Builder::from_random_bytes(r16)
                .into_uuid()
                .to_string();
            let want7 = uuid::Builder::from_unix_timestamp_millis(now, &r10)
                .into_uuid()
                .to_string();
            assert_eq!(v4(r16), want4);
            assert_eq!(v7(now, r16b), want7);
        }
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
