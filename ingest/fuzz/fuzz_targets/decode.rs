//! Fuzz target: request body decoding — the gzip stream with its decoded-size cap, then JSON.
//!
//! The first byte picks the encoding and the cap (so small caps, where the cut-off logic is
//! exercised on every input, are common); the rest is the raw body as it came off the wire.
//! Properties: never a panic; a decoded body is never larger than the cap; an identity body
//! comes back unchanged; every error maps to a 4xx with a JSON body.
#![no_main]

use bytes::Bytes;
use footfall_ingest::decode::{decode_payload, parse_json, Encoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 {
        Encoding::Identity
    } else {
        Encoding::Gzip
    };
    // 1 B .. 64 KiB caps, and the production default.
    let limit = match selector >> 1 {
        0 => 500 * 1024,
        n => 1usize << (n as usize % 17),
    };
    match decode_payload(Bytes::copy_from_slice(raw), encoding, limit) {
        Ok(decoded) => {
            assert!(decoded.len() <= limit, "{} > {limit}", decoded.len());
            if encoding == Encoding::Identity {
                assert_eq!(&decoded[..], raw);
            }
            match parse_json(&decoded) {
                Ok(value) => {
                    // What we parsed serializes back (it is what gets written).
                    let text = serde_json::to_string(&value).expect("serializable");
                    assert!(!text.contains('\n'));
                }
                Err(e) => check_error(&e),
            }
        }
        Err(e) => check_error(&e),
    }
});

fn check_error(e: &footfall_ingest::error::IngestError) {
    assert!(e.status().is_client_error(), "{e}: {}", e.status());
    let body = e.body();
    assert_eq!(body["success"], false);
    assert!(body["error"]["code"].is_string());
}
