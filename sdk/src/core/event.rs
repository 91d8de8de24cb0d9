//! Builds each message as one JSON string (Segment Spec), and the `/v1/batch` body around them.
//!
//! Per-message context (page, campaign, sessionId, sessionStart) is written into every message;
//! the page-independent context (library, userAgent, locale, timezone, screen) is written once
//! per batch at batch level, where the ingest merges it into each message (contracts.md) — that
//! keeps the queue, storage and wire small. Properties, traits, `context.page`,
//! `context.campaign` and the batch-level context arrive already serialized by the browser's
//! `JSON.stringify` (sdk/js/context.js) and are spliced in unchanged: JSON done by the browser
//! keeps escaping and number formatting out of the wasm.

use super::{ids, json};
use alloc::string::String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Page,
    Identify,
}

/// One message's fields. String fields hold raw text (escaped here) unless named `*_json`.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: Kind,
    /// 16 random bytes for the v4 `messageId`.
    pub message_random: [u8; 16],
    /// A uuid (made by the core, or checked by `core::persist` when read back): written unescaped.
    pub anonymous_id: &'a str,
    /// Empty when not identified.
    pub user_id: &'a str,
    /// The event's instant, ISO-8601 (`Host::iso`).
    pub timestamp: &'a str,
    /// `track`: the event name. `page`: the page name (empty = none). `identify`: unused.
    pub name: &'a str,
    /// `properties` (track, page) or `traits` (identify): a JSON object, or empty for `{}`.
    pub payload_json: &'a str,
    /// `context.page` JSON object.
    pub page_json: &'a str,
    /// `context.campaign` JSON object, or empty.
    pub campaign_json: &'a str,
    /// A uuid like `anonymous_id`: written unescaped.
    pub session_id: &'a str,
    pub session_start: bool,
    /// The caller's `options.context` JSON object, or empty. Its keys win over ours (Segment's
    /// rule); `skip` says which of ours it holds so we do not write them twice.
    pub user_context_json: &'a str,
    pub skip: Skip,
}

/// Which of our per-message context keys the caller's `options.context` overrides: bits
/// [`Skip::PAGE`], [`Skip::CAMPAIGN`], [`Skip::SESSION_ID`], [`Skip::SESSION_START`], as the JS
/// edge passes them (one word, not four flags: smaller wasm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip(pub u32);

impl Skip {
    pub const PAGE: u32 = 1;
    pub const CAMPAIGN: u32 = 2;
    pub const SESSION_ID: u32 = 4;
    pub const SESSION_START: u32 = 8;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Serializes `m`.
pub fn build(m: &Message) -> String {
    let payload = if m.payload_json.is_empty() {
        "{}"
    } else {
        m.payload_json
    };
    let mut o = String::with_capacity(
        260 + m.name.len()
            + payload.len()
            + m.page_json.len()
            + m.campaign_json.len()
            + m.user_id.len()
            + m.user_context_json.len(),
    );
    o.push_str("{\"type\":\"");
    o.push_str(match m.kind {
        Kind::Track => "track",
        Kind::Page => "page",
        Kind::Identify => "identify",
    });
    o.push_str("\",\"messageId\":\"");
    ids::push_v4(&mut o, m.message_random);
    // The anonymous id and the session id are uuids (made here, or checked when read back from
    // storage: core::persist): nothing to escape.
    o.push_str("\",\"anonymousId\":\"");
    o.push_str(m.anonymous_id);
    o.push('"');
    if !m.user_id.is_empty() {
        o.push_str(",\"userId\":");
        json::push_str(&mut o, m.user_id);
    }
    o.push_str(",\"timestamp\":\"");
    o.push_str(m.timestamp);
    match m.kind {
        Kind::Track => {
            o.push_str("\",\"event\":");
            json::push_str(&mut o, m.name);
            o.push_str(",\"properties\":");
        }
        Kind::Page => {
            o.push_str("\",");
            if !m.name.is_empty() {
                o.push_str("\"name\":");
                json::push_str(&mut o, m.name);
                o.push(',');
            }
            o.push_str("\"properties\":");
        }
        Kind::Identify => o.push_str("\",\"traits\":"),
    }
    o.push_str(payload);
    o.push_str(",\"context\":{");
    // Every member but the caller's is written with a comma after it; the last comma is dropped.
    if !m.skip.has(Skip::PAGE) && !m.page_json.is_empty() {
        o.push_str("\"page\":");
        o.push_str(m.page_json);
        o.push(',');
    }
    if !m.skip.has(Skip::CAMPAIGN) && !m.campaign_json.is_empty() {
        o.push_str("\"campaign\":");
        o.push_str(m.campaign_json);
        o.push(',');
    }
    if !m.skip.has(Skip::SESSION_ID) {
        o.push_str("\"sessionId\":\"");
        o.push_str(m.session_id);
        o.push_str("\",");
    }
    if m.session_start && !m.skip.has(Skip::SESSION_START) {
        o.push_str("\"sessionStart\":true,");
    }
    // `JSON.stringify` members (options.context): they never end with a comma.
    o.push_str(object_inner(m.user_context_json));
    if o.as_bytes().last() == Some(&b',') {
        // SAFETY: the last byte is an ASCII comma, so the rest is still UTF-8.
        unsafe { o.as_mut_vec().pop() };
    }
    o.push_str("}}");
    o
}

/// The members of a JSON object text (`{"a":1}` → `"a":1`), or "" when it is not an object or
/// has none (`{ }`). The text is `JSON.stringify` output (`options.context`), so there is no
/// whitespace around it to trim (`str::trim_ascii` was 144 bytes of wasm).
pub fn object_inner(obj: &str) -> &str {
    // Byte tests, not `strip_prefix('{')`: a char pattern brings a UTF-8 encoder into the wasm.
    let inner = match obj.as_bytes() {
        // SAFETY: the first and last bytes are ASCII braces: 1 and len - 1 are char boundaries.
        [b'{', .., b'}'] => unsafe { obj.get_unchecked(1..obj.len() - 1) },
        _ => "",
    };
    if inner.bytes().all(|b| b.is_ascii_whitespace()) {
        ""
    } else {
        inner
    }
}

/// The envelope bytes around the messages: `{"batch":[` … `],"sentAt":"…","writeKey":…,"context":…}`.
pub fn batch_overhead(write_key_json: &str, common_json: &str) -> usize {
    "{\"batch\":[],\"sentAt\":\"2000-01-01T00:00:00.000Z\",\"writeKey\":,\"context\":}".len()
        + write_key_json.len()
        + common_json.len()
}

/// The `/v1/batch` body. `write_key_json` is the already-escaped key.
pub fn batch_body<'a>(
    messages: impl Iterator<Item = &'a str>,
    bytes_hint: usize,
    sent_at: &str,
    write_key_json: &str,
    common_json: &str,
) -> String {
    let mut o = String::with_capacity(bytes_hint + batch_overhead(write_key_json, common_json));
    o.push_str("{\"batch\":[");
    for (i, m) in messages.enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(m);
    }
    o.push_str("],\"sentAt\":\"");
    o.push_str(sent_at);
    o.push_str("\",\"writeKey\":");
    o.push_str(write_key_json);
    o.push_str(",\"context\":");
    o.push_str(common_json);
    o.push('}');
    o
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn base<'a>() -> Message<'a> {
        Message {
            kind: Kind::Track,
            message_random: [1; 16],
            anonymous_id: "anon",
            user_id: "",
            timestamp: "2023-11-14T22:13:20.123Z",
            name: "Signed \"Up\"",
            payload_json: "{\"plan\":\"pro\"}",
            page_json: "{\"path\":\"/\"}",
            campaign_json: "",
            session_id: "sess",
            session_start: false,
            user_context_json: "",
            skip: Skip::default(),
        }
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn track_message() {
        let v = parse(&build(&base()));
        assert_eq!(
            v,
            json!({
                "type": "track",
                "messageId": "01010101-0101-4101-8101-010101010101",
                "anonymousId": "anon",
                "timestamp": "2023-11-14T22:13:20.123Z",
                "event": "Signed \"Up\"",
                "properties": {"plan": "pro"},
                "context": {"page": {"path": "/"}, "sessionId": "sess"}
            })
        );
    }

    #[test]
    fn page_and_identify_messages() {
        let m = Message {
            kind: Kind::Page,
            name: "",
            payload_json: "",
            user_id: "u1",
            session_start: true,
            campaign_json: "{\"name\":\"c\"}",
            ..base()
        };
        let v = parse(&build(&m));
        assert_eq!(v["type"], "page");
        assert!(v.get("name").is_none());
        assert_eq!(v["properties"], json!({}));
        assert_eq!(v["userId"], "u1");
        assert_eq!(v["context"]["sessionStart"], true);
        assert_eq!(v["context"]["campaign"]["name"], "c");
        let v = parse(&build(&Message {
            kind: Kind::Page,
            name: "Home",
            ..base()
        }));
        assert_eq!(v["name"], "Home");
        let v = parse(&build(&Message {
            kind: Kind::Identify,
            payload_json: "{\"email\":\"a@b.c\"}",
            ..base()
        }));
        assert_eq!(v["traits"]["email"], "a@b.c");
        assert!(v.get("event").is_none() && v.get("properties").is_none());
    }

    #[test]
    fn caller_context_wins() {
        let m = Message {
            user_context_json: "{\"page\":{\"path\":\"/old\"},\"ip\":\"1.2.3.4\"}",
            skip: Skip(Skip::PAGE),
            ..base()
        };
        let v = parse(&build(&m));
        assert_eq!(v["context"]["page"]["path"], "/old");
        assert_eq!(v["context"]["ip"], "1.2.3.4");
        assert_eq!(v["context"]["sessionId"], "sess");
        // Everything skipped and an empty caller context still gives valid JSON.
        let all = Skip(Skip::PAGE | Skip::CAMPAIGN | Skip::SESSION_ID | Skip::SESSION_START);
        let v = parse(&build(&Message {
            user_context_json: "{}",
            skip: all,
            ..base()
        }));
        assert_eq!(v["context"], json!({}));
        assert_eq!(object_inner("{ \"a\" : 1 }"), " \"a\" : 1 ");
        assert_eq!(object_inner("{ \n}"), "");
        assert_eq!(object_inner("{}"), "");
        assert_eq!(object_inner("[1]"), "");
    }

    #[test]
    fn batch_body_and_its_overhead() {
        // The batch-level context arrives serialized by the JS edge (context.js).
        let ctx = r#"{"library":{"name":"footfall","version":"0.1.0"},"locale":"en-US"}"#;
        let key = "\"dev\"";
        let msgs = ["{\"a\":1}", "{\"b\":2}"];
        let body = batch_body(
            msgs.iter().copied(),
            15,
            "1970-01-01T00:00:00.000Z",
            key,
            ctx,
        );
        let v = parse(&body);
        assert_eq!(v["batch"], json!([{"a": 1}, {"b": 2}]));
        assert_eq!(v["sentAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["writeKey"], "dev");
        assert_eq!(v["context"]["locale"], "en-US");
        assert_eq!(body.len(), batch_overhead(key, ctx) + 15);
        let empty = batch_body([].into_iter(), 0, "1970-01-01T00:00:00.000Z", key, ctx);
        assert_eq!(empty.len(), batch_overhead(key, ctx));
    }
}
