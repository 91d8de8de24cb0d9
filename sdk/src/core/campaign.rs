//! The campaign key: which `utm_*` campaign a page was opened with, as a small number the
//! session keeps (opening a page with a *different* campaign starts a new session).
//!
//! The `context.campaign` object itself (utm_campaign → `name`, utm_source → `source`, …, each
//! value cut to 200 characters) is written by the JS edge (sdk/js/context.js) with the browser's
//! URLSearchParams and JSON.stringify: percent-decoding, UTF-8 checks and escaping in the wasm
//! cost ~500 B gzip. The rule — what counts as a change — stays here: the key is a 32-bit FNV-1a
//! hash of that JSON, so the stored state (possibly a cookie) stays small and bounded.

/// 0 when the page has no campaign (`campaign_json` empty); otherwise a non-zero hash of it.
pub fn key(campaign_json: &str) -> u32 {
    if campaign_json.is_empty() {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for &b in campaign_json.as_bytes() {
        hash = (hash ^ b as u32).wrapping_mul(0x0100_0193);
    }
    hash.max(1)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_campaign_is_zero_and_a_campaign_never_is() {
        assert_eq!(key(""), 0);
        assert_ne!(key(r#"{"source":"a"}"#), 0);
    }

    #[test]
    fn key_tracks_the_values_and_their_fields() {
        let a = key(r#"{"source":"a","medium":"b"}"#);
        assert_eq!(a, key(r#"{"source":"a","medium":"b"}"#));
        assert_ne!(a, key(r#"{"source":"a","medium":"c"}"#));
        // Moving a value to another field is another campaign.
        assert_ne!(a, key(r#"{"source":"b","medium":"a"}"#));
    }

    proptest! {
        #[test]
        fn any_campaign_has_a_non_zero_key(s in ".+") {
            prop_assert_ne!(key(&s), 0);
        }
    }
}
