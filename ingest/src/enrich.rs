//! Server-side enrichment of accepted messages: clocks, client address, user agent, source.
//!
//! Everything here is decided by the server, not the client: `receivedAt` is our clock,
//! `timestamp` is corrected for the client's clock skew (Segment's rule
//! `timestamp = receivedAt − (sentAt − originalTimestamp)`), `context.ip` is the connection's
//! address (anonymised unless `--keep-ip`), and `source` is what the write key maps to. The write
//! key itself is removed: it must never reach the disk. Pure functions; the clock is a parameter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::HeaderMap;
use serde_json::{Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::bots::is_bot;
use crate::validate::parse_timestamp;

/// What the request (not the message) contributes to each of its messages.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// Server clock when the request arrived.
    pub received_at: OffsetDateTime,
    /// Batch-level `sentAt` (raw string; validated before use).
    pub sent_at: Option<&'a str>,
    /// Batch-level `context`, merged into each message's (the message's own keys win).
    pub batch_context: Option<&'a Map<String, Value>>,
    /// Client address as decided by `client_ip`.
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub source: &'a str,
    pub keep_ip: bool,
    /// With `--trust-proxy` a client-supplied `context.ip` (a server-side sender forwarding its
    /// user's address) is kept; otherwise it is replaced, so browsers cannot spoof it.
    pub trust_client_ip: bool,
}

/// RFC 3339, UTC, millisecond precision: `2024-05-01T10:00:00.123Z`.
pub fn format_rfc3339_ms(t: OffsetDateTime) -> Option<String> {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(t, &mut out)?;
    Some(out)
}

/// `format_rfc3339_ms`, appended to `out` (so the line pipeline quotes it without a copy).
pub fn write_rfc3339_ms(t: OffsetDateTime, out: &mut String) -> Option<()> {
    match rfc3339_ms_ascii(t) {
        // Only ASCII digits and separators.
        Some(b) => out.push_str(std::str::from_utf8(&b).ok()?),
        None => {
            // Outside four digits: the `time` formatter's rules (sign, width) decide.
            let fmt = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            out.push_str(&t.to_offset(time::UtcOffset::UTC).format(&fmt).ok()?);
        }
    }
    Some(())
}

/// `format_rfc3339_ms`'s text (ASCII digits and separators) when the year has four digits (the
/// line pipeline writes it without a `String`); `None` for other years.
pub fn rfc3339_ms_ascii(t: OffsetDateTime) -> Option<[u8; 24]> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    // By hand: this runs for every message whose clock is corrected, and `time`'s general
    // formatter was ~3 % of a batch's CPU.
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 3, u32::from(t.millisecond()));
    Some(b)
}

/// IPv4 with the last octet zeroed (/24), IPv6 truncated to /48. IPv4-mapped IPv6 counts as IPv4.
pub fn anonymise_ip(ip: IpAddr) -> IpAddr {
    match normalise_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or with `trust_proxy` the leftmost valid `X-Forwarded-For`
/// entry (the original client as reported by the proxy chain).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|s| s.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer
}

/// Enriches one validated message in place and returns its `messageId` (generated when missing).
pub fn enrich(msg: &mut Map<String, Value>, ctx: &RequestContext<'_>) -> String {
    msg.remove("writeKey");

    // --- context: batch merge, ip, userAgent ---
    let mut context = match msg.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    if let Some(batch) = ctx.batch_context {
        for (k, v) in batch {
            if !context.contains_key(k) {
                context.insert(k.clone(), v.clone());
            }
        }
    }
    let supplied_ip = context
        .get("ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok())
        .filter(|_| ctx.trust_client_ip);
    match supplied_ip.or(ctx.client_ip) {
        Some(ip) => {
            let ip = if ctx.keep_ip {
                normalise_ip(ip)
            } else {
                anonymise_ip(ip)
            };
            context.insert("ip".into(), Value::String(ip.to_string()));
        }
        None => {
            context.remove("ip");
        }
    }
    let has_ua = matches!(context.get("userAgent"), Some(Value::String(s)) if !s.is_empty());
    if let (false, Some(ua)) = (has_ua, ctx.user_agent) {
        context.insert("userAgent".into(), Value::String(ua.to_owned()));
    }
    // Judged on the agent the message ends up with: the page's own (navigator.userAgent, what a
    // rendering crawler shows) or else the request's. Only `true` is written; a client's own
    // `bot` flag is kept.
    if matches!(context.get("userAgent"), Some(Value::String(ua)) if is_bot(ua)) {
        context.insert("bot".into(), Value::Bool(true));
    }
    msg.insert("context".into(), Value::Object(context));

    // --- clocks ---
    let received = format_rfc3339_ms(ctx.received_at).unwrap_or_default();
    let sent_at_raw = match msg.get("sentAt") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => ctx.sent_at.map(str::to_owned),
    };
    let sent_at = sent_at_raw.as_deref().and_then(parse_timestamp);
    let client_ts_raw = ["timestamp", "originalTimestamp"]
        .iter()
        .find_map(|f| msg.get(*f).and_then(Value::as_str).map(str::to_owned));
    let client_ts = client_ts_raw.as_deref().and_then(parse_timestamp);
    match (client_ts, sent_at) {
        (Some(ts), Some(sent)) => {
            // Checked: absurd but valid dates (year 1 vs 9999) must not panic.
            let corrected = (sent - ts)
                .checked_neg()
                .and_then(|skewed| ctx.received_at.checked_add(skewed))
                .and_then(format_rfc3339_ms);
            msg.insert(
                "originalTimestamp".into(),
                Value::String(client_ts_raw.clone().unwrap_or_default()),
            );
            let ts = corrected.or(client_ts_raw).unwrap_or_default();
            msg.insert("timestamp".into(), Value::String(ts));
        }
        (Some(_), None) => {
            msg.insert(
                "timestamp".into(),
                Value::String(client_ts_raw.unwrap_or_default()),
            );
        }
        (None, _) => {
            msg.insert("timestamp".into(), Value::String(received.clone()));
        }
    }
    if let Some(s) = sent_at_raw {
        msg.insert("sentAt".into(), Value::String(s));
    }
    msg.insert("receivedAt".into(), Value::String(received));

    // --- identity ---
    let message_id = match msg.get("messageId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            msg.insert("messageId".into(), Value::String(id.clone()));
            id
        }
    };
    msg.insert("source".into(), Value::String(ctx.source.to_owned()));
    message_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;
    use time::macros::datetime;

    fn ctx<'a>() -> RequestContext<'a> {
        RequestContext {
            received_at: datetime!(2024-05-01 12:00:00.250 UTC),
            sent_at: None,
            batch_context: None,
            client_ip: Some("203.0.113.77".parse().unwrap()),
            user_agent: Some("UA/1.0"),
            source: "web",
            keep_ip: false,
            trust_client_ip: false,
        }
    }

    fn run(msg: Value, ctx: &RequestContext<'_>) -> Map<String, Value> {
        let Value::Object(mut m) = msg else { panic!() };
        enrich(&mut m, ctx);
        m
    }

    #[test]
    fn rfc3339_ms_by_hand_matches_the_time_formatter() {
        let fmt = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        for t in [
            datetime!(2024-05-01 12:00:00.250 UTC),
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(0001-01-01 00:00:00.999_999 UTC),
            datetime!(9999-12-31 23:59:59.999_999_999 UTC),
            datetime!(2024-02-29 23:59:59.001 +05:30),
            datetime!(-0001-06-01 10:00:00 UTC),
        ] {
            let want = t.to_offset(time::UtcOffset::UTC).format(&fmt).ok();
            assert_eq!(format_rfc3339_ms(t), want, "{t}");
        }
    }

    #[test]
    fn skew_is_corrected_from_sent_at() {
        // Client clock is 1 h behind: it stamped the event 10 s before sending.
        let mut c = ctx();
        c.sent_at = Some("2024-05-01T11:00:10.000Z");
        let m = run(
            json!({"type":"track","timestamp":"2024-05-01T11:00:00.000Z"}),
            &c,
        );
        assert_eq!(m["originalTimestamp"], "2024-05-01T11:00:00.000Z");
        assert_eq!(m["timestamp"], "2024-05-01T11:59:50.250Z");
        assert_eq!(m["receivedAt"], "2024-05-01T12:00:00.250Z");
        assert_eq!(m["sentAt"], "2024-05-01T11:00:10.000Z");
    }

    #[test]
    fn message_sent_at_wins_and_offsets_are_normalised() {
        let mut c = ctx();
        c.sent_at = Some("2030-01-01T00:00:00Z");
        let m = run(
            json!({"timestamp":"2024-05-01T13:00:00+02:00","sentAt":"2024-05-01T11:00:01Z"}),
            &c,
        );
        assert_eq!(m["timestamp"], "2024-05-01T11:59:59.250Z");
        assert_eq!(m["originalTimestamp"], "2024-05-01T13:00:00+02:00");
    }

    #[test]
    fn without_sent_at_timestamp_is_kept_and_without_timestamp_it_is_received_at() {
        let m = run(json!({"timestamp":"2024-05-01T11:00:00Z"}), &ctx());
        assert_eq!(m["timestamp"], "2024-05-01T11:00:00Z");
        assert!(m.get("originalTimestamp").is_none());
        let m = run(json!({}), &ctx());
        assert_eq!(m["timestamp"], "2024-05-01T12:00:00.250Z");
    }

    #[test]
    fn extreme_dates_do_not_panic() {
        let mut c = ctx();
        c.sent_at = Some("9999-12-31T23:59:59Z");
        let m = run(json!({"timestamp":"0001-01-01T00:00:00Z"}), &c);
        assert!(m["timestamp"].is_string());
    }

    #[test]
    fn ip_anonymisation() {
        let cases = [
            ("203.0.113.77", "203.0.113.0"),
            ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
            ("::ffff:198.51.100.9", "198.51.100.0"),
            ("::1", "::"),
        ];
        for (input, want) in cases {
            let got = anonymise_ip(input.parse().unwrap());
            assert_eq!(got.to_string(), want, "{input}");
        }
        let m = run(json!({}), &ctx());
        assert_eq!(m["context"]["ip"], "203.0.113.0");
        let mut c = ctx();
        c.keep_ip = true;
        assert_eq!(run(json!({}), &c)["context"]["ip"], "203.0.113.77");
    }

    #[test]
    fn client_supplied_ip_only_when_trusted() {
        let msg = json!({"context":{"ip":"198.51.100.20"}});
        assert_eq!(run(msg.clone(), &ctx())["context"]["ip"], "203.0.113.0");
        let mut c = ctx();
        c.trust_client_ip = true;
        assert_eq!(run(msg, &c)["context"]["ip"], "198.51.100.0");
    }

    #[test]
    fn forwarded_for_only_with_trust_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("garbage, 198.51.100.1, 10.0.0.1"),
        );
        let peer = Some("10.0.0.2".parse().unwrap());
        assert_eq!(client_ip(&h, peer, false), peer);
        assert_eq!(
            client_ip(&h, peer, true),
            Some("198.51.100.1".parse().unwrap())
        );
        assert_eq!(client_ip(&HeaderMap::new(), peer, true), peer);
    }

    #[test]
    fn context_merge_user_agent_source_and_write_key() {
        let batch = json!({"library":{"name":"footfall"},"locale":"en","userAgent":"Batch/2"});
        let mut c = ctx();
        c.batch_context = batch.as_object();
        let m = run(
            json!({"writeKey":"secret","source":"spoofed","context":{"locale":"fr","page":{"path":"/"}}}),
            &c,
        );
        assert!(m.get("writeKey").is_none());
        assert_eq!(m["source"], "web");
        assert_eq!(m["context"]["locale"], "fr");
        assert_eq!(m["context"]["library"]["name"], "footfall");
        assert_eq!(m["context"]["page"]["path"], "/");
        // The batch's userAgent is the message's; the header only fills a gap.
        assert_eq!(m["context"]["userAgent"], "Batch/2");
        let m = run(json!({}), &ctx());
        assert_eq!(m["context"]["userAgent"], "UA/1.0");
        assert!(!serde_json::to_string(&m).unwrap().contains("secret"));
    }

    #[test]
    fn bots_are_marked_from_the_final_user_agent() {
        let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        // From the header when the message has no agent of its own.
        let mut c = ctx();
        c.user_agent = Some(googlebot);
        let m = run(json!({"type":"track"}), &c);
        assert_eq!(m["context"]["bot"], true);
        // The page's own agent wins over the header (a crawler rendering the page).
        let m = run(
            json!({"context":{"userAgent":"HeadlessChrome/126"}}),
            &ctx(),
        );
        assert_eq!(m["context"]["bot"], true);
        let m = run(
            json!({"context":{"userAgent":"Mozilla/5.0 Firefox/127.0"}}),
            &c,
        );
        assert!(m["context"].get("bot").is_none(), "only true is written");
        let m = run(json!({}), &ctx());
        assert!(m["context"].get("bot").is_none());
    }

    #[test]
    fn message_id_is_kept_or_generated() {
        let mut m = json!({"messageId":"abc"}).as_object().unwrap().clone();
        assert_eq!(enrich(&mut m, &ctx()), "abc");
        let mut m = Map::new();
        let id = enrich(&mut m, &ctx());
        assert_eq!(id.len(), 36);
        assert_eq!(m["messageId"], id.as_str());
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}
