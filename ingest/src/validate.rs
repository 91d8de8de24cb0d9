//! Per-message validation rules (Segment's spec, checked before anything is written).
//!
//! Pure functions over `serde_json::Value`: a message is either accepted (returned as its JSON
//! object, with `type` filled in from the endpoint when the body omitted it) or rejected with the
//! field and a stable rule name. Normalisation that needs the server's context (ids, clocks,
//! addresses) belongs to `enrich`.

use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::OffsetDateTime;

use crate::error::Rejection;

/// Longest accepted `messageId`, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// The six Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        MessageType::Track,
        MessageType::Identify,
        MessageType::Page,
        MessageType::Screen,
        MessageType::Group,
        MessageType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Track => "track",
            MessageType::Identify => "identify",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A rejection before its batch index is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub field: &'static str,
    pub rule: &'static str,
    pub message: String,
}

impl RuleViolation {
    pub fn new(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            rule,
            message: message.into(),
        }
    }

    pub fn at(self, index: usize) -> Rejection {
        Rejection {
            index,
            field: self.field.to_owned(),
            rule: self.rule,
            message: self.message,
        }
    }
}

/// Parses an ISO-8601 timestamp with an offset (RFC 3339 and the wider ISO forms).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if let Some(t) = parse_utc_ms(s) {
        return Some(t);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .ok()
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, the form the SDK (and `receivedAt`) writes, read without the
/// `time` parser (~300 instructions per batch message): the time `Rfc3339` parses it to.
/// `None` for any other text, or a value it would have to judge (a leap second, a field out of
/// range), which `parse_timestamp` leaves to the parser.
fn parse_utc_ms(s: &str) -> Option<OffsetDateTime> {
    let b: &[u8; 24] = s.as_bytes().try_into().ok()?;
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if seps.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u16, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u16::from(c - b'0'))
        })
    };
    let small = |from: usize| num(from, from + 2).and_then(|v| u8::try_from(v).ok());
    let (year, month, day) = (num(0, 4)?, small(5)?, small(8)?);
    let (hour, minute, second, milli) = (small(11)?, small(14)?, small(17)?, num(20, 23)?);
    if second > 59 {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(i32::from(year), month, day).ok()?;
    let t = date.with_hms_milli(hour, minute, second, milli).ok()?;
    Some(t.assume_utc())
}

/// Fields that hold timestamps written by the client.
const TIMESTAMP_FIELDS: [&str; 3] = ["timestamp", "originalTimestamp", "sentAt"];
/// Fields that must be objects when present.
const OBJECT_FIELDS: [&str; 4] = ["context", "properties", "traits", "integrations"];

/// Validates one message. `implied` is the type of a single-message endpoint (`/v1/track`…):
/// the body may omit `type`, but may not contradict it.
pub fn validate_message(
    value: Value,
    implied: Option<MessageType>,
    max_message_bytes: usize,
) -> Result<Map<String, Value>, RuleViolation> {
    let size = json_size(&value);
    let Value::Object(mut msg) = value else {
        return Err(RuleViolation::new(
            "",
            "type",
            "message must be a JSON object",
        ));
    };
    if size > max_message_bytes {
        return Err(RuleViolation::new(
            "",
            "max_size",
            format!("message is {size} bytes, more than the {max_message_bytes} allowed"),
        ));
    }

    let kind = match (msg.get("type"), implied) {
        (None | Some(Value::Null), Some(t)) => {
            msg.insert("type".into(), Value::String(t.as_str().into()));
            t
        }
        (None | Some(Value::Null), None) => {
            return Err(RuleViolation::new("type", "required", "type is required"))
        }
        (Some(Value::String(s)), _) => {
            let t = MessageType::parse(s).ok_or_else(|| {
                RuleViolation::new(
                    "type",
                    "enum",
                    format!("type must be one of track, identify, page, screen, group, alias; got {s:?}"),
                )
            })?;
            if let Some(expected) = implied.filter(|e| *e != t) {
                return Err(RuleViolation::new(
                    "type",
                    "enum",
                    format!("type {s:?} sent to /v1/{}", expected.as_str()),
                ));
            }
            t
        }
        (Some(_), _) => return Err(RuleViolation::new("type", "type", "type must be a string")),
    };

    let user_id = optional_id(&msg, "userId")?;
    let anonymous_id = optional_id(&msg, "anonymousId")?;
    if !user_id && !anonymous_id {
        return Err(RuleViolation::new(
            "userId",
            "required",
            "userId or anonymousId is required",
        ));
    }

    match msg.get("messageId") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(RuleViolation::new(
                "messageId",
                "max_length",
                format!("messageId is longer than {MAX_MESSAGE_ID_CHARS} characters"),
            ))
        }
        Some(Value::String(_)) => {}
        Some(_) => {
            return Err(RuleViolation::new(
                "messageId",
                "type",
                "messageId must be a string",
            ))
        }
    }

    match kind {
        MessageType::Track => required_string(&msg, "event")?,
        MessageType::Alias => required_string(&msg, "previousId")?,
        MessageType::Group => required_string(&msg, "groupId")?,
        MessageType::Page | MessageType::Screen => optional_string(&msg, "name")?,
        MessageType::Identify => {}
    }

    for field in TIMESTAMP_FIELDS {
        match msg.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if parse_timestamp(s).is_some() => {}
            Some(Value::String(s)) => {
                return Err(RuleViolation::new(
                    field,
                    "format",
                    format!("{field} must be an ISO-8601 date-time with an offset, got {s:?}"),
                ))
            }
            Some(_) => {
                return Err(RuleViolation::new(
                    field,
                    "type",
                    format!("{field} must be an ISO-8601 string"),
                ))
            }
        }
    }
    for field in OBJECT_FIELDS {
        if !matches!(
            msg.get(field),
            None | Some(Value::Null) | Some(Value::Object(_))
        ) {
            return Err(RuleViolation::new(
                field,
                "type",
                format!("{field} must be an object"),
            ));
        }
    }
    Ok(msg)
}

/// True when `field` holds a non-empty id; null and absent are "no id"; other types are an error.
fn optional_id(msg: &Map<String, Value>, field: &'static str) -> Result<bool, RuleViolation> {
    match msg.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => Ok(!s.is_empty()),
        Some(_) => Err(RuleViolation::new(
            field,
            "type",
            format!("{field} must be a string"),
        )),
    }
}

fn required_string(msg: &Map<String, Value>, field: &'static str) -> Result<(), RuleViolation> {
    match msg.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(RuleViolation::new(
            field,
            "required",
            format!("{field} is required"),
        )),
        Some(_) => Err(RuleViolation::new(
            field,
            "type",
            format!("{field} must be a string"),
        )),
    }
}

fn optional_string(msg: &Map<String, Value>, field: &'static str) -> Result<(), RuleViolation> {
    match msg.get(field) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(RuleViolation::new(
            field,
            "type",
            format!("{field} must be a string"),
        )),
    }
}

/// Size of the compact JSON encoding, without allocating it.
pub fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a Value to an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 32 * 1024;

    #[test]
    fn table() {
        use MessageType::*;
        let long_id = "m".repeat(101);
        let big = "x".repeat(MAX);
        // (message, implied type, expected Ok or (field, rule))
        type Case = (
            Value,
            Option<MessageType>,
            Result<(), (&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                json!({"type":"track","event":"e","userId":"u"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"track","event":"e","anonymousId":"a"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","anonymousId":null}),
                None,
                Ok(()),
            ),
            (json!({"event":"e","userId":"u"}), Some(Track), Ok(())),
            (
                json!({"event":"e","userId":"u"}),
                None,
                Err(("type", "required")),
            ),
            (
                json!({"type":"identify","userId":"u"}),
                Some(Track),
                Err(("type", "enum")),
            ),
            (
                json!({"type":"click","userId":"u"}),
                None,
                Err(("type", "enum")),
            ),
            (json!({"type":7,"userId":"u"}), None, Err(("type", "type"))),
            (
                json!({"type":"track","userId":"u"}),
                None,
                Err(("event", "required")),
            ),
            (
                json!({"type":"track","event":"","userId":"u"}),
                None,
                Err(("event", "required")),
            ),
            (
                json!({"type":"track","event":5,"userId":"u"}),
                None,
                Err(("event", "type")),
            ),
            (
                json!({"type":"track","event":"e"}),
                None,
                Err(("userId", "required")),
            ),
            (
                json!({"type":"track","event":"e","userId":null,"anonymousId":null}),
                None,
                Err(("userId", "required")),
            ),
            (
                json!({"type":"track","event":"e","userId":"","anonymousId":""}),
                None,
                Err(("userId", "required")),
            ),
            (
                json!({"type":"track","event":"e","userId":42}),
                None,
                Err(("userId", "type")),
            ),
            (
                json!({"type":"identify","anonymousId":"a","traits":{"x":1}}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"identify","anonymousId":"a","traits":[1]}),
                None,
                Err(("traits", "type")),
            ),
            (
                json!({"type":"page","anonymousId":"a","name":"Home"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"page","anonymousId":"a","name":1}),
                None,
                Err(("name", "type")),
            ),
            (json!({"type":"screen","anonymousId":"a"}), None, Ok(())),
            (
                json!({"type":"group","anonymousId":"a","groupId":"g"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"group","anonymousId":"a"}),
                None,
                Err(("groupId", "required")),
            ),
            (
                json!({"type":"alias","userId":"u","previousId":"p"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"alias","userId":"u"}),
                None,
                Err(("previousId", "required")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","messageId":"m".repeat(100)}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","messageId":long_id}),
                None,
                Err(("messageId", "max_length")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","messageId":1}),
                None,
                Err(("messageId", "type")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","timestamp":"2024-05-01T10:00:00.123Z"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","timestamp":"2024-05-01T10:00:00+02:00"}),
                None,
                Ok(()),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","timestamp":"yesterday"}),
                None,
                Err(("timestamp", "format")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","timestamp":"2024-05-01"}),
                None,
                Err(("timestamp", "format")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","timestamp":1714557600000_u64}),
                None,
                Err(("timestamp", "type")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","sentAt":"nope"}),
                None,
                Err(("sentAt", "format")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","context":"x"}),
                None,
                Err(("context", "type")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","properties":[]}),
                None,
                Err(("properties", "type")),
            ),
            (
                json!({"type":"track","event":"e","userId":"u","properties":{"big":big}}),
                None,
                Err(("", "max_size")),
            ),
            (json!([1, 2]), None, Err(("", "type"))),
            (json!("track"), Some(Track), Err(("", "type"))),
        ];
        for (i, (msg, implied, expected)) in cases.into_iter().enumerate() {
            let got = validate_message(msg.clone(), implied, MAX)
                .map(|_| ())
                .map_err(|v| (v.field, v.rule));
            assert_eq!(got, expected, "case {i}: {msg}");
        }
    }

    #[test]
    fn implied_type_is_filled_in() {
        let m = validate_message(
            json!({"event":"e","userId":"u"}),
            Some(MessageType::Track),
            MAX,
        )
        .unwrap();
        assert_eq!(m["type"], "track");
    }

    #[test]
    fn size_counts_compact_json() {
        assert_eq!(json_size(&json!({"a":[1,2]})), r#"{"a":[1,2]}"#.len());
    }

    #[test]
    fn timestamps() {
        assert!(parse_timestamp("2024-05-01T10:00:00Z").is_some());
        assert!(parse_timestamp("2024-05-01T10:00:00.5-05:00").is_some());
        assert!(parse_timestamp("2024-05-01T10:00:00").is_none());
        assert!(parse_timestamp("").is_none());
    }

    /// The fast path answers exactly as the `time` parser for the form it reads, and leaves
    /// the rest to it (leap seconds, out-of-range fields, other separators or lengths).
    #[test]
    fn utc_ms_fast_path_matches_the_rfc3339_parser() {
        let years = [
            "0000", "0001", "1900", "1970", "2000", "2023", "2024", "2100", "9999",
        ];
        let months = ["00", "01", "02", "04", "09", "12", "13", "99"];
        let days = ["00", "01", "28", "29", "30", "31", "32"];
        let clocks = [
            "00:00:00.000",
            "23:59:59.999",
            "10:00:00.123",
            "24:00:00.000",
            "23:60:00.000",
            "23:59:60.000",
            "23:59:60.999",
            "12:34:56.780",
        ];
        let mut checked = 0;
        for y in years {
            for m in months {
                for d in days {
                    for c in clocks {
                        for (t, z) in [("T", "Z"), ("t", "z"), ("T", "+00:00"), (" ", "Z")] {
                            let s = format!("{y}-{m}-{d}{t}{c}{z}");
                            let want = OffsetDateTime::parse(&s, &Rfc3339).ok();
                            if let Some(fast) = parse_utc_ms(&s) {
                                assert_eq!(Some(fast), want, "{s}");
                                assert_eq!(fast.offset(), want.unwrap().offset(), "{s}");
                                checked += 1;
                            }
                            let full = OffsetDateTime::parse(&s, &Rfc3339)
                                .or_else(|_| OffsetDateTime::parse(&s, &Iso8601::DEFAULT))
                                .ok();
                            assert_eq!(parse_timestamp(&s), full, "{s}");
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
        for s in [
            "2024-05-01T10:00:00.00Z",
            "2024-05-01T10:00:00.0000Z",
            "2024-05-01T1a:00:00.000Z",
        ] {
            assert_eq!(parse_utc_ms(s), None, "{s}");
        }
    }
}
