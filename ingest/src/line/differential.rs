//! The line pipeline against its reference, as a differential harness shared by `line`'s unit
//! tests and the `line_pipeline` fuzz target (`ingest/fuzz`); not part of the request path.
//!
//! `reference` runs a body through `validate::validate_message` + `enrich::enrich` + serde_json;
//! `fast` runs it through the production calls of this module, in the router's order (`parse_body`,
//! `deep_check`, `take_batch`, `take_context`, `as_string`, `Batch::message`, `into_message`,
//! `Request::new`, `process`). `same` asserts they agree: the same messages accepted and rejected
//! with the same field, rule and message, accepted lines byte-identical (or, when the server
//! generated the `messageId`, identical as JSON once that id is removed), and the body refused by
//! both or by neither; and the same again when the top level is split without the one-pass split
//! (`parse_body_in_passes`, its fallback). `check` is `same` plus the properties of every line the
//! fast path writes: exactly one JSON object, one trailing newline, no `writeKey`, the `messageId`
//! it reports.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use time::macros::datetime;

use super::{
    as_string, deep_check, parse_body, parse_body_in_passes, process, Body, Request, RequestInputs,
    Scratch, Str,
};
use crate::enrich::RequestContext;
use crate::validate::{parse_timestamp, validate_message, MessageType, RuleViolation};

/// The key's `source`, on every line.
pub const SOURCE: &str = "web";

/// What the request and the server's settings contribute.
#[derive(Debug, Clone, Copy)]
pub struct Opts<'u> {
    /// `None`: a `/v1/batch` body; else a single-message body sent to that type's endpoint.
    pub implied: Option<MessageType>,
    /// `--max-message-bytes`.
    pub max: usize,
    /// `--keep-ip`.
    pub keep_ip: bool,
    /// `--trust-proxy`.
    pub trust: bool,
    /// The `User-Agent` header.
    pub ua: Option<&'u str>,
    /// The client address as `enrich::client_ip` decided it.
    pub client_ip: Option<IpAddr>,
}

/// A batch with the server defaults, a desktop browser, a public IPv4 client.
pub const DEFAULT: Opts<'static> = Opts {
    implied: None,
    max: 32 * 1024,
    keep_ip: false,
    trust: false,
    ua: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"),
    client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77))),
};

/// `body` is a `/v1/batch` body (implied None) or a single message. Returns per message
/// `Ok(line)` or `Err((field, rule, message))`, or `None` when the body is not usable.
/// A line is its text (`Value::String`) when the client sent the `messageId`, else its parsed
/// object without the generated `messageId`.
pub type Out = Option<Vec<Result<Value, (String, String, String)>>>;

fn strip_generated(mut v: Value, had_id: bool) -> Value {
    if !had_id {
        if let Some(obj) = v.as_object_mut() {
            obj.remove("messageId");
        }
    }
    v
}

fn received() -> time::OffsetDateTime {
    datetime!(2024-05-01 12:00:00.250 UTC)
}

/// The reference: `validate_message` + `enrich` + serde_json, on the body parsed as a `Value`.
pub fn reference(body: &str, o: &Opts<'_>) -> Out {
    let Ok(Value::Object(mut top)) = crate::plain_json::from_str(body) else {
        return None;
    };
    top.remove("writeKey");
    let (messages, context, sent_at) = if o.implied.is_none() {
        let Some(Value::Array(b)) = top.remove("batch") else {
            return None;
        };
        let c = match top.remove("context") {
            Some(Value::Object(c)) => Some(c),
            None | Some(Value::Null) => None,
            _ => return None,
        };
        let s = match top.remove("sentAt") {
            Some(Value::String(s)) if parse_timestamp(&s).is_some() => Some(s),
            None | Some(Value::Null) => None,
            _ => return None,
        };
        (b, c, s)
    } else {
        (vec![Value::Object(top)], None, None)
    };
    let ctx = RequestContext {
        received_at: received(),
        sent_at: sent_at.as_deref(),
        batch_context: context.as_ref(),
        client_ip: o.client_ip,
        user_agent: o.ua,
        source: SOURCE,
        keep_ip: o.keep_ip,
        trust_client_ip: o.trust,
    };
    Some(
        messages
            .into_iter()
            .map(|m| {
                let had_id = matches!(m.get("messageId"), Some(Value::String(s)) if !s.is_empty());
                match validate_message(m, o.implied, o.max) {
                    Ok(mut msg) => {
                        crate::enrich::enrich(&mut msg, &ctx);
                        let mut bytes = serde_json::to_vec(&Value::Object(msg)).unwrap();
                        bytes.push(b'\n');
                        // Byte-level identity is checked by `fast` against this text.
                        Ok(if had_id {
                            Value::String(String::from_utf8(bytes).unwrap())
                        } else {
                            strip_generated(crate::plain_json::from_slice(&bytes).unwrap(), false)
                        })
                    }
                    Err(v) => Err((v.field.to_owned(), v.rule.to_owned(), v.message)),
                }
            })
            .collect(),
    )
}

/// One message as the production pipeline left it, and whether the client sent a non-empty
/// string `messageId` (so the line's id is not generated).
pub type Processed = (bool, Result<Encoded, RuleViolation>);

/// An accepted message as `process` wrote it: its line (cut from the buffer the request's lines
/// share), the id it reported for it, and whether it is a bot's.
#[derive(Debug)]
pub struct Encoded {
    pub line: Vec<u8>,
    message_id: String,
    pub bot: bool,
}

impl Encoded {
    pub fn message_id(&self) -> &str {
        &self.message_id
    }
}

/// The production line pipeline, in the router's order. `None` when it gives up on the body
/// (the router then answers with the reference parser's error).
pub fn run(body: &str, o: &Opts<'_>) -> Option<Vec<Processed>> {
    run_with(body, o, true)
}

/// `run`, with (`one_pass`) or without the one-pass split of the top level that
/// `parse_body` tries first.
pub fn run_with(body: &str, o: &Opts<'_>, one_pass: bool) -> Option<Vec<Processed>> {
    let checker = Body::new(body.as_bytes());
    let parsed = if one_pass {
        parse_body(body, &checker)
    } else {
        parse_body_in_passes(body, &checker)
    };
    let mut parsed = parsed.ok()?;
    for (k, v) in &parsed.fields {
        if k.0 != "batch" {
            deep_check(*v, &checker).ok()?;
        }
    }
    let field = |n: &'static str| Str(Cow::Borrowed(n));
    parsed.fields.remove(&field("writeKey"));
    let (items, context, sent_at) = if o.implied.is_none() {
        let b = parsed.take_batch(&checker).ok()??;
        let c = match parsed.take_context(&checker).ok()? {
            Some(Ok(split)) => Some(split),
            None => None,
            Some(Err(r)) if r.get() == "null" => None,
            _ => return None,
        };
        let s = match parsed.fields.remove(&field("sentAt")) {
            None => None,
            Some(r) if r.get() == "null" => None,
            Some(r) => match as_string(r.get()).ok()? {
                Some(s) if parse_timestamp(&s).is_some() => Some(r),
                _ => return None,
            },
        };
        let mut scratch = Scratch::default();
        let items: Vec<_> = (0..b.len())
            .map(|i| b.message(i, &checker, &mut scratch))
            .collect::<Result<_, _>>()
            .ok()?;
        (items, c, s)
    } else {
        (vec![Ok(parsed.into_message())], None, None)
    };
    let req = Request::new(RequestInputs {
        received_at: received(),
        sent_at,
        batch_context: context,
        client_ip: o.client_ip,
        user_agent: o.ua,
        source: SOURCE,
        keep_ip: o.keep_ip,
        trust_client_ip: o.trust,
        body: &checker,
    })
    .ok()?;
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    let mut lines = crate::sink::Lines::default();
    for item in items {
        let (had_id, r) = match item {
            Ok(m) => {
                let had_id = match m.fields.get(&field("messageId")) {
                    Some(raw) => matches!(as_string(raw.get()).ok()?, Some(s) if !s.is_empty()),
                    None => false,
                };
                let start = lines.buffer().len();
                let r = process(m, o.implied, o.max, &req, &mut scratch, &mut lines).ok()?;
                let r = r.map(|w| {
                    lines.push();
                    let (line, id) = lines.iter().last().expect("the line just pushed");
                    assert_eq!(line.start, start);
                    Encoded {
                        line: lines.bytes()[line].to_vec(),
                        message_id: id.to_owned(),
                        bot: w.bot,
                    }
                });
                if r.is_err() {
                    assert_eq!(
                        lines.buffer().len(),
                        start,
                        "a rejected message wrote nothing"
                    );
                }
                (had_id, r)
            }
            Err(v) => (false, Err(v)),
        };
        out.push((had_id, r));
    }
    Some(out)
}

/// `run`'s result in `Out` form.
pub fn to_out(processed: Option<Vec<Processed>>) -> Out {
    let out = processed?
        .into_iter()
        .map(|(had_id, r)| match r {
            Ok(e) => {
                let v: Value = crate::plain_json::from_slice(&e.line).unwrap();
                assert_eq!(v["messageId"], Value::String(e.message_id().to_owned()));
                assert_eq!(e.bot, v["context"]["bot"] == Value::Bool(true));
                if had_id {
                    Ok(Value::String(String::from_utf8(e.line).unwrap()))
                } else {
                    Ok(strip_generated(v, false))
                }
            }
            Err(v) => Err((v.field.to_owned(), v.rule.to_owned(), v.message)),
        })
        .collect();
    Some(out)
}

/// The production line pipeline, in `Out` form.
pub fn fast(body: &str, o: &Opts<'_>) -> Out {
    to_out(run(body, o))
}

/// Asserts the production pipeline and the reference agree on `body`.
pub fn same(body: &str, o: &Opts<'_>) {
    let r = reference(body, o);
    let f = fast(body, o);
    // The fast path may refuse a body only where the reference refuses it too.
    assert_eq!(f, r, "body: {body}");
    same_both_ways(body, o, &f);
}

/// The one-pass split answers only for text serde_json's skipping parse accepts, and the
/// pipeline's result does not depend on which way the top level was split.
fn same_both_ways(body: &str, o: &Opts<'_>, one_pass: &Out) {
    if super::top_level::split_body(body).is_some() {
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok(),
            "split in one pass but not JSON: {body:?}"
        );
    }
    let passes = to_out(run_with(body, o, false));
    assert_eq!(&passes, one_pass, "one pass vs passes, body: {body:?}");
}

/// `same`, plus the shape of every line the production pipeline writes.
pub fn check(body: &str, o: &Opts<'_>) {
    let processed = run(body, o);
    for (_, r) in processed.iter().flatten() {
        if let Ok(e) = r {
            check_line(e);
        }
    }
    let r = reference(body, o);
    let f = to_out(processed);
    assert_eq!(f, r, "body: {body:?}");
    same_both_ways(body, o, &f);
}

/// One NDJSON line: a single compact JSON object, one trailing newline, no `writeKey`, the
/// fields the server owns, and the `messageId` reported for it.
pub fn check_line(e: &Encoded) {
    let line = &e.line;
    assert_eq!(line.last(), Some(&b'\n'), "ends with a newline");
    assert_eq!(
        line.iter().filter(|b| **b == b'\n').count(),
        1,
        "exactly one newline: {:?}",
        String::from_utf8_lossy(line)
    );
    let text = std::str::from_utf8(line).expect("a line is UTF-8");
    let v: Value = crate::plain_json::from_str(text).expect("a line is one JSON value");
    let obj = v.as_object().expect("a line is an object");
    assert!(!obj.contains_key("writeKey"), "writeKey in {text}");
    assert!(!e.message_id().is_empty());
    assert_eq!(obj["messageId"], Value::String(e.message_id().to_owned()));
    assert_eq!(obj["source"], SOURCE);
    for field in ["receivedAt", "timestamp"] {
        assert!(obj[field].is_string(), "{field} in {text}");
    }
    assert!(obj["context"].is_object(), "context in {text}");
}
