//! Fuzz target: the stored identity/session state (`ff_id` in localStorage or the cookie),
//! `core::persist::read_state` and `write_state`.
//!
//! Whatever sits under our key — another script's data, a truncated write, a hand-edited cookie,
//! an older or newer SDK's format — is fed to the parser on every page load, so it must be total.
//! Each input is used twice:
//! 1. as the raw stored value: never a panic; a parsed state satisfies the invariants the rest of
//!    the SDK relies on (valid lowercase UUIDs, user id within the stored cap) and survives
//!    `read_state(write_state(s)) == s`, and what we write is already canonical;
//! 2. as the bytes of a `State` the SDK could hold (ids built the way the SDK builds them):
//!    `read_state(write_state(s)) == s`, except that a user id over the cap is not stored, and the
//!    written value stays small (it may be a cookie, which must never grow).
#![no_main]

use footfall_sdk::core::ids;
use footfall_sdk::core::persist::{read_state, write_state, MAX_STORED_USER_ID};
use footfall_sdk::core::session::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raw_value(data);
    structured(data);
});

fn raw_value(data: &[u8]) {
    // Storage hands us a JS string; the browser layer gets it as UTF-8 (lone surrogates replaced).
    let raw = String::from_utf8_lossy(data);
    let Some(s) = read_state(&raw) else { return };
    assert!(ids::is_uuid(&s.anonymous_id), "{s:?}");
    assert!(
        s.session_id.is_empty() || ids::is_uuid(&s.session_id),
        "{s:?}"
    );
    assert!(s.user_id.len() <= MAX_STORED_USER_ID, "{s:?}");
    let written = write_state(&s);
    assert_eq!(read_state(&written).as_ref(), Some(&s), "{written:?}");
    // Writing what we read back gives the same text again (no drift across page loads).
    assert_eq!(write_state(&read_state(&written).unwrap()), written);
}

/// A byte cursor: missing bytes read as zero, so every input maps to some state.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

fn structured(data: &[u8]) {
    let mut b = Bytes(data);
    let [flags] = b.take::<1>();
    let anonymous_id = ids::v4(b.take());
    let session_start = b.u64();
    let session_id = if flags & 1 == 0 {
        String::new()
    } else {
        ids::v7(session_start, b.take())
    };
    let last_activity = b.u64();
    let campaign = u32::from_le_bytes(b.take());
    // The rest is the user id: any text, `|` and newlines included (it is stored last for that).
    // Bit 2 makes it long, to cross the stored cap.
    let mut user_id = String::from_utf8_lossy(b.0).into_owned();
    if flags & 4 != 0 && !user_id.is_empty() {
        user_id = user_id.repeat(MAX_STORED_USER_ID / user_id.len() + 1);
    }
    let s = State {
        anonymous_id,
        user_id,
        session_id,
        session_start,
        last_activity,
        campaign,
        opt_out: flags & 2 != 0,
    };
    let written = write_state(&s);
    // ~130 bytes plus the stored user id: bounded whatever the page passed to identify().
    assert!(
        written.len() <= 140 + MAX_STORED_USER_ID,
        "{} bytes",
        written.len()
    );
    let back = read_state(&written).unwrap_or_else(|| panic!("own write unreadable: {written:?}"));
    if s.user_id.len() <= MAX_STORED_USER_ID {
        assert_eq!(back, s);
    } else {
        assert_eq!(
            back,
            State {
                user_id: String::new(),
                ..s
            }
        );
    }
}
