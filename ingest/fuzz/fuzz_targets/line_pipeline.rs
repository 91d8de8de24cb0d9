//! Fuzz target: the production line pipeline (`footfall_ingest::line`, what the router runs on
//! every request) against the reference (`validate_message` + `enrich` + serde_json).
//!
//! Three header bytes, then the raw body. The first byte picks the endpoint: bit 7 set, a
//! `/v1/batch` body; else a single-message body sent to `/v1/<type>` (type = low bits mod 6).
//! The second picks the settings: `--max-message-bytes` (bits 0-2: tiny caps, where `max_size`
//! decides, down to the default), `--keep-ip` (bit 3), `--trust-proxy` (bit 4) and the client
//! address (bits 5-6); the third the `User-Agent` (a browser, crawlers, none, odd text).
//! Properties (`line::differential::check`): never a panic; the same messages accepted and
//! rejected, with the same field, rule and message, as the reference; accepted lines
//! byte-identical to the reference's (JSON-identical without `messageId` when the server
//! generated it); a body refused by both or neither; every line one JSON object with one
//! trailing newline, no `writeKey`, the fields the server owns. A body that is not UTF-8 is
//! refused by the reference parser too (the router refuses it before the pipeline).
#![no_main]

use std::net::IpAddr;

use footfall_ingest::line::differential::{check, Opts};
use footfall_ingest::validate::MessageType;
use libfuzzer_sys::fuzz_target;

const MAX: [usize; 8] = [32 * 1024, 64, 128, 200, 256, 400, 1024, 4096];

const AGENTS: [Option<&str>; 8] = [
    Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"),
    None,
    Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    Some(""),
    Some("Mozilla/5.0 HeadlessChrome/126"),
    Some("curl/8.5.0"),
    Some("say \"hi\" \\ back\t"),
    Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"),
];

fuzz_target!(|data: &[u8]| {
    let [endpoint, settings, agent, raw @ ..] = data else {
        return;
    };
    let client_ip: Option<IpAddr> = match (settings >> 5) & 3 {
        0 => Some("203.0.113.77".parse().unwrap()),
        1 => Some("2001:db8:1:2::3".parse().unwrap()),
        2 => Some("::ffff:198.51.100.9".parse().unwrap()),
        _ => None,
    };
    let opts = Opts {
        implied: if endpoint & 0x80 != 0 {
            None
        } else {
            Some(MessageType::ALL[(endpoint & 0x7f) as usize % 6])
        },
        max: MAX[(settings & 7) as usize],
        keep_ip: settings & 0x08 != 0,
        trust: settings & 0x10 != 0,
        ua: AGENTS[(agent & 7) as usize],
        client_ip,
    };
    match std::str::from_utf8(raw) {
        Ok(body) => check(body, &opts),
        Err(_) => assert!(footfall_ingest::decode::parse_json(raw).is_err()),
    }
});
