//! Fuzz target: message validation and enrichment, as the router runs them on a `/v1/batch` body.
//!
//! The input is parsed as JSON (most inputs are not JSON; libFuzzer's comparison tracing finds
//! the shapes quickly, and a seed corpus helps). Its `batch` messages go through
//! `validate_message` with the batch's `context` and `sentAt`, and every accepted one through
//! `enrich` and the line encoding. Properties: never a panic (absurd dates, huge numbers, odd ids,
//! hostile user agents included); an accepted message becomes exactly one line of compact JSON
//! that parses back to an object with the fields the server owns (`receivedAt`, `timestamp`,
//! `messageId`, `source`, `context.ip`) and no `writeKey`; a rejection names a known rule.
#![no_main]

use footfall_ingest::enrich::{enrich, RequestContext};
use footfall_ingest::validate::{parse_timestamp, validate_message, MessageType};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const RULES: [&str; 6] = [
    "required",
    "type",
    "enum",
    "format",
    "max_length",
    "max_size",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    // As on a single-message endpoint (the body is the message) or on /v1/batch.
    let implied = match selector % 8 {
        n @ 0..=5 => Some(MessageType::ALL[n as usize]),
        _ => None,
    };
    let (messages, batch_context, sent_at) = if implied.is_none() {
        let Some(Value::Array(batch)) = body.remove("batch") else {
            return;
        };
        let context = match body.remove("context") {
            Some(Value::Object(c)) => Some(c),
            _ => None,
        };
        let sent_at = match body.remove("sentAt") {
            Some(Value::String(s)) if parse_timestamp(&s).is_some() => Some(s),
            _ => None,
        };
        (batch, context, sent_at)
    } else {
        (vec![Value::Object(body)], None, None)
    };
    let max_message_bytes = if selector & 0x80 != 0 { 256 } else { 32 * 1024 };
    let ctx = RequestContext {
        received_at: time::OffsetDateTime::from_unix_timestamp(1_714_557_600).unwrap(),
        sent_at: sent_at.as_deref(),
        batch_context: batch_context.as_ref(),
        client_ip: Some(if selector & 0x40 != 0 {
            "2001:db8:1:2::3".parse().unwrap()
        } else {
            "203.0.113.77".parse().unwrap()
        }),
        user_agent: Some("Mozilla/5.0 (compatible; Fuzzbot/1.0)"),
        source: "web",
        keep_ip: selector & 0x20 != 0,
        trust_client_ip: selector & 0x10 != 0,
    };
    for message in messages {
        match validate_message(message, implied, max_message_bytes) {
            Ok(mut msg) => {
                let id = enrich(&mut msg, &ctx);
                check_line(&msg, &id);
            }
            Err(v) => assert!(RULES.contains(&v.rule), "{}", v.rule),
        }
    }
});

fn check_line(msg: &Map<String, Value>, id: &str) {
    let mut line = serde_json::to_vec(msg).expect("serializable");
    line.push(b'\n');
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    let back: Value = serde_json::from_slice(&line).expect("a line parses back");
    let obj = back.as_object().expect("an object");
    assert!(!obj.contains_key("writeKey"));
    assert_eq!(obj["messageId"], Value::String(id.to_owned()));
    assert!(!id.is_empty());
    assert_eq!(obj["source"], "web");
    for field in ["receivedAt", "timestamp"] {
        assert!(obj[field].is_string(), "{field}");
    }
    let context = obj["context"].as_object().expect("context");
    assert!(context["ip"].is_string());
}
