//! Hostile input against the real binary, table-driven: every case is raw bytes on a fresh TCP
//! connection with the status and body it must get — a clear 4xx with our JSON error (or, for
//! transport abuse that hyper's parser refuses, its bodiless 4xx and a closed connection, or just
//! a closed connection). The few valid shapes among them (`"anonymousId": null` with a `userId`,
//! duplicate keys, a huge integer, pipelining) must be 200.
//!
//! Across the whole run: the server never panics (its stderr is checked), nothing from a refused
//! case reaches the files (only `ok-*` ids may be written, and the smuggled request never is), and
//! its memory stays bounded — VmRSS is sampled every 20 ms and VmHWM read at the end, both printed.
//! Transport cases that need time (slow-loris, a stalled body, 10,000 idle connections) use short
//! `--header-read-timeout` / `--body-read-timeout` values.

mod common;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Peak RSS the server may reach over the whole attack, in KiB. The largest legitimate working
/// set is a few 500 KiB bodies being decoded at once; 10,000 connection attempts and a 1 GB
/// gzip bomb must not move it much.
const RSS_BOUND_KIB: u64 = 96 * 1024;

/// What a case must get back.
#[derive(Debug, Clone)]
enum Expect {
    /// Our JSON answer: status and `error.code` (`None` for `{"success":true}`).
    Json(u16, Option<&'static str>),
    /// Our JSON answer, after which the server must close the connection.
    JsonThenClose(u16, Option<&'static str>),
    /// A partially rejected batch: 400, `accepted`, and the first rejection's field and rule.
    Rejected(usize, &'static str, &'static str),
    /// hyper's parser refused it: this status, no body, connection closed.
    Transport(u16),
    /// The connection is closed without any response.
    Closed,
    /// Several pipelined responses, in order (JSON or health).
    Pipelined(&'static [u16]),
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// One HTTP/1.1 request with Host, Content-Length and `Connection: close`.
fn http(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: ingest.test\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn post(body: &[u8]) -> Vec<u8> {
    http("POST", "/v1/batch?writeKey=dev", &[JSON], body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A gzip member that inflates to `mib` MiB of zeros without compressing that much: a
/// sync-flushed deflate block of 1 MiB of zeros is position independent, so it is repeated.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    enc.flush().unwrap();
    let block = enc.get_ref().clone();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&[0; 8]);
    out
}

fn msg(id: &str) -> Value {
    json!({"type":"track","event":"Hostile","userId":"u1","messageId":id})
}

fn with(field: &str, value: Value) -> Vec<u8> {
    let mut m = msg("never");
    m[field] = value;
    json!({"batch":[m]}).to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    let mut c: Vec<Case> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>, expect: Expect| {
        c.push(Case {
            name: name.to_owned(),
            bytes,
            expect,
        })
    };
    use Expect::*;

    // --- malformed JSON ---
    add(
        "malformed JSON",
        post(b"{\"batch\":[}"),
        Json(400, Some("invalid_json")),
    );
    add(
        "truncated JSON",
        post(br#"{"batch":[{"type":"track","event":"x"#),
        Json(400, Some("invalid_json")),
    );
    add("empty body", post(b""), Json(400, Some("invalid_json")));
    add(
        "trailing garbage",
        post(b"{\"batch\":[]} x"),
        Json(400, Some("invalid_json")),
    );
    add(
        "body is null",
        post(b"null"),
        Json(400, Some("invalid_body")),
    );
    add(
        "body is an array",
        post(b"[]"),
        Json(400, Some("invalid_body")),
    );
    add(
        "invalid UTF-8 in a string",
        post(b"{\"batch\":[{\"type\":\"track\",\"event\":\"\xff\xfe\",\"userId\":\"u\"}]}"),
        Json(400, Some("invalid_json")),
    );
    add(
        "lone surrogate escape",
        post(br#"{"batch":[{"type":"track","event":"\ud800","userId":"u"}]}"#),
        Json(400, Some("invalid_json")),
    );
    add(
        "UTF-16 body",
        post(
            &"{\"batch\":[]}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<_>>(),
        ),
        Json(400, Some("invalid_json")),
    );
    let deep = format!(
        r#"{{"batch":[{{"type":"track","event":"e","userId":"u","properties":{{"a":{}1{}}}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    add(
        "10,000-level nesting in a message",
        post(deep.as_bytes()),
        Json(400, Some("invalid_json")),
    );
    add(
        "10,000-level nesting as the body",
        post("{\"a\":".repeat(10_000).as_bytes()),
        Json(400, Some("invalid_json")),
    );

    // --- sizes ---
    add(
        "huge string (400 KB) in a message",
        post(&with("properties", json!({"s": "x".repeat(400_000)}))),
        Rejected(0, "", "max_size"),
    );
    add(
        "huge array (150,000 items) in a message",
        post(&with("properties", json!({"a": vec![0; 150_000]}))),
        Rejected(0, "", "max_size"),
    );
    add(
        "message just over 32 KiB",
        post(&with("properties", json!({"s": "x".repeat(32 * 1024)}))),
        Rejected(0, "", "max_size"),
    );
    let many: Vec<Value> = (0..2501).map(|i| msg(&format!("never-{i}"))).collect();
    add(
        "2,501 messages in a batch",
        post(json!({ "batch": many }).to_string().as_bytes()),
        Json(413, Some("payload_too_large")),
    );
    add(
        "600 KB body (Content-Length)",
        post(&vec![b' '; 600_000]),
        Json(413, Some("payload_too_large")),
    );
    let mut chunked = b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 32_000).as_bytes());
        chunked.extend_from_slice(&vec![b' '; 32_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    add(
        "640 KB chunked body (no length)",
        chunked,
        Json(413, Some("payload_too_large")),
    );
    add(
        "Content-Length 999,999,999 with a tiny body",
        {
            let mut r = b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n".to_vec();
            r.extend_from_slice(b"{}");
            r
        },
        Json(413, Some("payload_too_large")),
    );

    // --- numbers ---
    add(
        "number out of range (1e999)",
        post(&with("properties", json!("PLACEHOLDER"))).replace_placeholder("1e999"),
        Json(400, Some("invalid_json")),
    );
    add(
        "NaN literal",
        post(&with("properties", json!("PLACEHOLDER"))).replace_placeholder("{\"n\":NaN}"),
        Json(400, Some("invalid_json")),
    );
    add(
        "integer beyond u64 (kept as a float)",
        post(json!({"batch":[msg("ok-bigint")]}).to_string().as_bytes()).replace_str(
            "\"userId\"",
            "\"properties\":{\"n\":18446744073709551616123},\"userId\"",
        ),
        Json(200, None),
    );

    // --- duplicate keys: the last one wins, consistently for validation and for the line ---
    add(
        "duplicate keys (last wins)",
        post(br#"{"batch":[{"type":"alias","type":"track","event":"Dup","userId":"u","messageId":"never-dup","messageId":"ok-dup"}]}"#),
        Json(200, None),
    );
    add(
        "duplicate writeKey (last wins: unknown)",
        http(
            "POST",
            "/v1/batch",
            &[JSON],
            br#"{"writeKey":"dev","writeKey":"nope","batch":[{"type":"track","event":"e","userId":"u","messageId":"never-dupkey"}]}"#,
        ),
        Json(401, Some("unauthorized")),
    );

    // --- wrong types in every field ---
    for (field, value, want_field, rule) in [
        ("type", json!(7), "type", "type"),
        ("type", json!("click"), "type", "enum"),
        ("event", json!(7), "event", "type"),
        ("event", json!(""), "event", "required"),
        ("userId", json!(7), "userId", "type"),
        ("anonymousId", json!([]), "anonymousId", "type"),
        ("messageId", json!(5), "messageId", "type"),
        (
            "messageId",
            json!("m".repeat(101)),
            "messageId",
            "max_length",
        ),
        ("timestamp", json!(5), "timestamp", "type"),
        ("timestamp", json!("yesterday"), "timestamp", "format"),
        ("originalTimestamp", json!({}), "originalTimestamp", "type"),
        ("sentAt", json!("2024-13-45T99:00:00Z"), "sentAt", "format"),
        ("context", json!("x"), "context", "type"),
        ("properties", json!([1]), "properties", "type"),
        ("traits", json!("x"), "traits", "type"),
        ("integrations", json!(1), "integrations", "type"),
    ] {
        add(
            &format!("{field} = {}", short(&value)),
            post(&with(field, value)),
            Rejected(0, want_field, rule),
        );
    }
    for (name, message, field, rule) in [
        (
            "page name = {}",
            json!({"type":"page","anonymousId":"a","name":{}}),
            "name",
            "type",
        ),
        (
            "alias previousId = 5",
            json!({"type":"alias","userId":"u","previousId":5}),
            "previousId",
            "type",
        ),
        (
            "group groupId = true",
            json!({"type":"group","userId":"u","groupId":true}),
            "groupId",
            "type",
        ),
        ("message = 1", json!(1), "", "type"),
        (
            "userId and anonymousId null",
            json!({"type":"identify","userId":null,"anonymousId":null}),
            "userId",
            "required",
        ),
    ] {
        add(
            name,
            post(json!({ "batch": [message] }).to_string().as_bytes()),
            Rejected(0, field, rule),
        );
    }
    add(
        "anonymousId null with a userId (valid)",
        post(json!({"batch":[{"type":"identify","userId":"u","anonymousId":null,"messageId":"ok-nullanon"}]}).to_string().as_bytes()),
        Json(200, None),
    );
    add(
        "batch = {}",
        post(b"{\"batch\":{}}"),
        Json(400, Some("invalid_body")),
    );
    add(
        "batch-level context = \"x\"",
        post(b"{\"batch\":[],\"context\":\"x\"}"),
        Json(400, Some("invalid_body")),
    );
    add(
        "batch-level sentAt = 5",
        post(b"{\"batch\":[],\"sentAt\":5}"),
        Json(400, Some("invalid_body")),
    );

    // --- encodings and media types ---
    let inner = gzip_bomb(1024);
    let nested = gzip(&inner);
    eprintln!(
        "gzip bombs: nested {} bytes -> {} bytes -> 1 GiB; single layer {} bytes -> 400 MiB",
        nested.len(),
        inner.len(),
        gzip_bomb(400).len()
    );
    let gz = [JSON, ("Content-Encoding", "gzip")];
    add(
        "gzip bomb, nested (~3 KB -> 1 GiB)",
        http("POST", "/v1/batch?writeKey=dev", &gz, &nested),
        Json(413, Some("payload_too_large")),
    );
    add(
        "gzip bomb, one layer (400 KB -> 400 MiB)",
        http("POST", "/v1/batch?writeKey=dev", &gz, &gzip_bomb(400)),
        Json(413, Some("payload_too_large")),
    );
    let ok = gzip(json!({"batch":[msg("never-gz")]}).to_string().as_bytes());
    add(
        "truncated gzip",
        http("POST", "/v1/batch?writeKey=dev", &gz, &ok[..ok.len() / 2]),
        Json(400, Some("invalid_gzip")),
    );
    add(
        "gzip header, garbage after",
        http(
            "POST",
            "/v1/batch?writeKey=dev",
            &gz,
            b"\x1f\x8b\x08\x00garbagegarbage",
        ),
        Json(400, Some("invalid_gzip")),
    );
    add(
        "plain JSON labelled gzip",
        http("POST", "/v1/batch?writeKey=dev", &gz, b"{\"batch\":[]}"),
        Json(400, Some("invalid_gzip")),
    );
    add(
        "Content-Encoding: br",
        http(
            "POST",
            "/v1/batch?writeKey=dev",
            &[JSON, ("Content-Encoding", "br")],
            b"{}",
        ),
        Json(415, Some("unsupported_media_type")),
    );
    add(
        "Content-Type: form",
        http(
            "POST",
            "/v1/batch?writeKey=dev",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"a=1",
        ),
        Json(415, Some("unsupported_media_type")),
    );
    add(
        "no Content-Type",
        http("POST", "/v1/batch?writeKey=dev", &[], b"{\"batch\":[]}"),
        Json(415, Some("unsupported_media_type")),
    );

    // --- keys and origins ---
    let body = json!({"batch":[msg("never-key")]}).to_string();
    add(
        "missing write key",
        http("POST", "/v1/batch", &[JSON], body.as_bytes()),
        Json(401, Some("unauthorized")),
    );
    add(
        "garbled Basic auth",
        http(
            "POST",
            "/v1/batch",
            &[JSON, ("Authorization", "Basic !!!")],
            body.as_bytes(),
        ),
        Json(401, Some("unauthorized")),
    );
    add(
        "Bearer instead of Basic",
        http(
            "POST",
            "/v1/batch",
            &[JSON, ("Authorization", "Bearer dev")],
            body.as_bytes(),
        ),
        Json(401, Some("unauthorized")),
    );
    add(
        "unknown key in the query",
        http("POST", "/v1/batch?writeKey=guess", &[JSON], body.as_bytes()),
        Json(401, Some("unauthorized")),
    );
    add(
        "unknown key in the body",
        http(
            "POST",
            "/v1/batch",
            &[JSON],
            json!({"writeKey":"guess","batch":[]})
                .to_string()
                .as_bytes(),
        ),
        Json(401, Some("unauthorized")),
    );
    add(
        "key of the wrong type in the body",
        http(
            "POST",
            "/v1/batch",
            &[JSON],
            b"{\"writeKey\":5,\"batch\":[]}",
        ),
        Json(401, Some("unauthorized")),
    );
    add(
        "prefix of a real key",
        http("POST", "/v1/batch?writeKey=sho", &[JSON], body.as_bytes()),
        Json(401, Some("unauthorized")),
    );
    add(
        "key used from an origin it does not allow",
        http(
            "POST",
            "/v1/batch?writeKey=shop",
            &[
                ("Content-Type", "text/plain"),
                ("Origin", "https://evil.example"),
            ],
            body.as_bytes(),
        ),
        Json(403, Some("origin_not_allowed")),
    );
    add(
        "same key from its own origin (control)",
        http(
            "POST",
            "/v1/batch?writeKey=shop",
            &[
                ("Content-Type", "text/plain"),
                ("Origin", "https://shop.example"),
            ],
            json!({"batch":[msg("ok-origin")]}).to_string().as_bytes(),
        ),
        Json(200, None),
    );
    add(
        "GET on an ingest route",
        http("GET", "/v1/batch", &[], b""),
        Json(405, Some("method_not_allowed")),
    );
    add(
        "path traversal in the URL",
        http("GET", "/../../etc/passwd", &[], b""),
        Json(404, Some("not_found")),
    );

    // --- request smuggling and framing ---
    let smuggled = http(
        "POST",
        "/v1/track?writeKey=dev",
        &[JSON],
        br#"{"event":"e","userId":"u","messageId":"smuggled"}"#,
    );
    let mut cl_te = b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec();
    cl_te.extend_from_slice(&smuggled);
    // hyper follows RFC 9112 here: Transfer-Encoding wins, the Content-Length header is removed
    // before the application sees it, and the connection is closed after the response, so the
    // request hidden behind the body is never parsed. (CL.TE: the chunked body is empty.)
    add(
        "Content-Length + Transfer-Encoding (CL.TE)",
        cl_te,
        JsonThenClose(400, Some("invalid_json")),
    );
    let chunk = json!({"batch":[msg("ok-tecl")]}).to_string();
    let mut te_cl = format!("POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len()).into_bytes();
    te_cl.extend_from_slice(&smuggled);
    add(
        "Transfer-Encoding + Content-Length (TE.CL)",
        te_cl,
        JsonThenClose(200, None),
    );
    let mut two_cl = format!("POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n", smuggled.len()).into_bytes();
    two_cl.extend_from_slice(&smuggled);
    add("two different Content-Lengths", two_cl, Transport(400));
    add(
        "Transfer-Encoding: gzip, chunked",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
        Json(400, Some("bad_framing")),
    );
    add(
        "Transfer-Encoding: xchunked",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "space before the colon of Transfer-Encoding",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "invalid chunk size",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
        Json(400, Some("body_read_error")),
    );
    add(
        "chunk size beyond u64",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n".to_vec(),
        Json(400, Some("body_read_error")),
    );
    add(
        "Content-Length: -1",
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n".to_vec(),
        Transport(400),
    );

    // --- header abuse ---
    let mut flood = b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        flood.extend_from_slice(format!("X-Flood-{i}: v\r\n").as_bytes());
    }
    flood.extend_from_slice(b"\r\n");
    add("header flood (10,000 headers)", flood, Transport(431));
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend_from_slice(&vec![b'a'; 1_000_000]);
    big.extend_from_slice(b"\r\n\r\n");
    add("one 1 MB header", big, Transport(431));
    let mut uri = b"GET /healthz?".to_vec();
    uri.extend_from_slice(&vec![b'a'; 100_000]);
    uri.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    add("100 KB request target", uri, Transport(414));
    add(
        "garbage request line",
        b"\x00\x01\x02GARBAGE\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "NUL in a header value",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "obsolete line folding",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "HTTP/0.9 request",
        b"GET /healthz\r\n\r\n".to_vec(),
        Transport(400),
    );
    add(
        "HTTP/2 preface on an HTTP/1 port",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        Closed,
    );

    // --- pipelining ---
    let one = |id: &str, close: bool| {
        let b = json!({"batch":[msg(id)]}).to_string();
        format!(
            "POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{b}",
            b.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes()
    };
    add(
        "three pipelined requests",
        [
            one("ok-pipe-1", false),
            one("ok-pipe-2", false),
            one("ok-pipe-3", true),
        ]
        .concat(),
        Pipelined(&[200, 200, 200]),
    );
    let bad = b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}".to_vec();
    add(
        "pipelined, a bad one in the middle",
        [one("ok-pipe-4", false), bad, one("ok-pipe-5", true)].concat(),
        Pipelined(&[200, 400, 200]),
    );
    c
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 20 {
        format!("{}…", &s[..20])
    } else {
        s
    }
}

trait Replace {
    fn replace_placeholder(self, with: &str) -> Vec<u8>;
    fn replace_str(self, from: &str, to: &str) -> Vec<u8>;
}

impl Replace for Vec<u8> {
    /// Swaps the JSON string `"PLACEHOLDER"` for raw text (and fixes Content-Length).
    fn replace_placeholder(self, with: &str) -> Vec<u8> {
        self.replace_str("\"PLACEHOLDER\"", with)
    }

    fn replace_str(self, from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let body = body.replacen(from, to, 1);
        let head: Vec<String> = head
            .split("\r\n")
            .map(|l| {
                if l.starts_with("Content-Length:") {
                    format!("Content-Length: {}", body.len())
                } else {
                    l.to_owned()
                }
            })
            .collect();
        format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
    }
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Splits everything a connection sent back into responses (Content-Length framed).
fn parse_responses(mut raw: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let start = end + 4;
        let stop = (start + len).min(raw.len());
        out.push(Response {
            status,
            head: head.to_ascii_lowercase(),
            body: raw[start..stop].to_vec(),
        });
        raw = &raw[stop..];
        if status == 100 {
            continue;
        }
    }
    out
}

/// Sends a case and collects everything until the server closes (or `within` passes).
async fn exchange(port: u16, bytes: &[u8], within: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The server may answer (413, 431) and close before it read everything: not an error.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

fn check(case: &Case, raw: &[u8], closed: bool) -> Result<String, String> {
    let responses = parse_responses(raw);
    let json = |r: &Response| serde_json::from_slice::<Value>(&r.body).ok();
    let got = responses
        .iter()
        .map(|r| r.status.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let fail = |why: &str| {
        Err(format!(
            "{why}; got {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(400)])
        ))
    };
    match &case.expect {
        Expect::Json(status, code) | Expect::JsonThenClose(status, code) => {
            let [r] = responses.as_slice() else {
                return fail("expected one response");
            };
            let Some(body) = json(r) else {
                return fail("expected a JSON body");
            };
            if r.status != *status {
                return fail(&format!("expected {status}"));
            }
            match code {
                None if body != json!({"success":true}) => return fail("expected success"),
                Some(code) if body["error"]["code"] != *code || body["success"] != false => {
                    return fail(&format!("expected code {code}"))
                }
                _ => {}
            }
            let must_close = matches!(case.expect, Expect::JsonThenClose(..))
                || *status == 413
                || case.bytes.windows(17).any(|w| w == b"Connection: close");
            if must_close && (!closed || !r.head.contains("connection: close")) {
                return fail("connection left open");
            }
            Ok(format!("{} {}", r.status, code.unwrap_or("success")))
        }
        Expect::Rejected(accepted, field, rule) => {
            let [r] = responses.as_slice() else {
                return fail("expected one response");
            };
            let body = json(r).unwrap_or(Value::Null);
            let first = &body["rejected"][0];
            if r.status != 400
                || body["accepted"] != *accepted
                || first["field"] != *field
                || first["rule"] != *rule
                || first["index"] != 0
            {
                return fail(&format!("expected 400 rejected {field}/{rule}"));
            }
            Ok(format!("400 rejected {field}/{rule}"))
        }
        Expect::Transport(status) => {
            let [r] = responses.as_slice() else {
                return fail("expected one response");
            };
            if r.status != *status || !r.body.is_empty() || !closed {
                return fail(&format!("expected a bodiless {status} and a close"));
            }
            Ok(format!("{status}, closed"))
        }
        Expect::Closed => {
            if !raw.is_empty() || !closed {
                return fail("expected a silent close");
            }
            Ok("closed".into())
        }
        Expect::Pipelined(want) => {
            let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
            if statuses != *want
                || !responses
                    .iter()
                    .all(|r| r.head.contains("application/json"))
            {
                return fail(&format!("expected {want:?}, got {got}"));
            }
            Ok(format!("{got} in order"))
        }
    }
}

/// Samples the server's VmRSS until stopped; returns the highest value seen (KiB).
fn rss_sampler(
    pid: u32,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(kb) = proc_status_kib(pid, "VmRSS:") {
                peak.fetch_max(kb, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Headers one byte a second: the header read timeout (2 s) must close the connection.
async fn slow_loris(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    let request =
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    for b in request.iter() {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        // A read that returns means the server answered or closed.
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            let n = r.unwrap_or(0);
            let elapsed = started.elapsed();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains("200") {
                return Err(format!("served a slow-loris request: {text}"));
            }
            return if elapsed < Duration::from_secs(5) {
                Ok(format!("closed after {:.1} s", elapsed.as_secs_f64()))
            } else {
                Err(format!("held for {elapsed:?}"))
            };
        }
        if started.elapsed() > Duration::from_secs(8) {
            return Err("never closed".into());
        }
    }
    Err("the whole request went through one byte a second".into())
}

/// A body that stops half way: 408 with our JSON after the body read timeout (2 s).
async fn stalled_body(port: u16) -> Result<String, String> {
    let started = Instant::now();
    let (raw, closed) = exchange(
        port,
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"batch\":[",
        Duration::from_secs(6),
    )
    .await;
    let r = parse_responses(&raw);
    let body: Value = r
        .first()
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .unwrap_or(Value::Null);
    let elapsed = started.elapsed();
    if r.len() == 1
        && r[0].status == 408
        && body["error"]["code"] == "request_timeout"
        && closed
        && elapsed < Duration::from_secs(5)
    {
        Ok(format!(
            "408 request_timeout after {:.1} s",
            elapsed.as_secs_f64()
        ))
    } else {
        Err(format!(
            "{:?} closed={closed} after {elapsed:?}",
            String::from_utf8_lossy(&raw)
        ))
    }
}

/// 10,000 connections that send nothing. The connection cap (1,024) bounds what the server
/// holds, the header read timeout (2 s) closes idle ones, and once they are gone it serves again.
async fn idle_connections(srv: &Server) -> Result<String, String> {
    const N: usize = 10_000;
    let port = srv.port;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(N);
    for _ in 0..N {
        tasks.push(tokio::spawn(async move {
            let connected = tokio::time::timeout(
                Duration::from_secs(3),
                TcpStream::connect(("127.0.0.1", port)),
            )
            .await;
            match connected {
                Ok(Ok(mut s)) => {
                    // Hold it, sending nothing, until the server closes it (or 8 s pass).
                    let mut buf = [0u8; 16];
                    let closed = tokio::time::timeout(Duration::from_secs(8), s.read(&mut buf))
                        .await
                        .is_ok();
                    (true, closed)
                }
                _ => (false, false),
            }
        }));
    }
    // While they are held: the server's view of its connections never exceeds the cap.
    let mut max_open = 0i64;
    let metrics_url = srv.url("/metrics");
    let mut established = 0;
    let mut closed_by_server = 0;
    let sampler = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if let Some(n) = proc_fd_count(srv.child.id()) {
                max_open = max_open.max(n as i64);
            }
        }
    };
    let (_, results) = tokio::join!(sampler, futures_join(tasks));
    for (connected, closed) in results {
        established += usize::from(connected);
        closed_by_server += usize::from(closed);
    }
    // Served again once the flood is gone.
    let healthy = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(r) = srv.client.get(&metrics_url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let summary = format!(
        "{established} of {N} connected, {closed_by_server} closed by the server, at most {max_open} fds open in the server, healthy after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The cap (1,024) plus the process's own files.
    if healthy && max_open <= 1024 + 64 && closed_by_server > 1024 {
        Ok(summary)
    } else {
        Err(summary)
    }
}

fn proc_fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Lets this process (and the server it starts) open 10,000+ sockets.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a local, fully initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < 16_384 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_answers_with_bounded_memory() {
    raise_fd_limit();
    let srv = Server::start(&[
        "--write-key",
        "dev",
        "--write-key",
        "shop",
        "--allowed-origin",
        "shop=https://shop.example",
        "--header-read-timeout",
        "2",
        "--body-read-timeout",
        "2",
    ]);
    let pid = srv.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = rss_sampler(pid, stop.clone(), peak_rss.clone());
    let baseline = proc_status_kib(pid, "VmRSS:").unwrap_or(0);

    let cases = cases();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for case in &cases {
        let (raw, closed) = exchange(srv.port, &case.bytes, Duration::from_secs(5)).await;
        match check(case, &raw, closed) {
            Ok(got) => table.push(format!("  ok   {:<48} {got}", case.name)),
            Err(e) => {
                table.push(format!("  FAIL {:<48} {e}", case.name));
                failures.push(case.name.clone());
            }
        }
    }
    for (name, result) in [
        ("slow-loris (headers 1 byte/s)", slow_loris(srv.port).await),
        ("stalled body", stalled_body(srv.port).await),
        ("10,000 idle connections", idle_connections(&srv).await),
    ] {
        match result {
            Ok(got) => table.push(format!("  ok   {name:<48} {got}")),
            Err(e) => {
                table.push(format!("  FAIL {name:<48} {e}"));
                failures.push(name.to_owned());
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let sampled = peak_rss.load(Ordering::Relaxed);
    eprintln!(
        "hostile input: {} cases\n{}\nserver RSS: {} KiB at start, sampled peak {} KiB, VmHWM {} KiB (bound {} KiB)",
        cases.len() + 3,
        table.join("\n"),
        baseline,
        sampled,
        hwm,
        RSS_BOUND_KIB
    );
    assert!(failures.is_empty(), "failed cases: {failures:?}");
    assert!(cases.len() + 3 >= 40);

    // No panic, and the server is still up.
    let log = srv.stderr();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    let resp = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(hwm > 0 && hwm <= RSS_BOUND_KIB, "VmHWM {hwm} KiB");

    // Only the valid cases wrote anything, each once; the smuggled request never ran.
    let lines = read_lines(&srv.data());
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["messageId"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "ok-bigint",
            "ok-dup",
            "ok-nullanon",
            "ok-origin",
            "ok-pipe-1",
            "ok-pipe-2",
            "ok-pipe-3",
            "ok-pipe-4",
            "ok-pipe-5",
            "ok-tecl"
        ]
    );
    let dup = lines.iter().find(|l| l["messageId"] == "ok-dup").unwrap();
    assert_eq!(
        dup["type"], "track",
        "the last duplicate key is the one validated and written"
    );
    let big = lines
        .iter()
        .find(|l| l["messageId"] == "ok-bigint")
        .unwrap();
    assert!(big["properties"]["n"].is_f64(), "{big}");
}
