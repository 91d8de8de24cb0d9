//! Router tests without sockets: `app(state).oneshot(request)` against a real sink in a temp dir.
//!
//! Each test reads back the NDJSON files the request produced, so "200" is never taken on trust.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use clap::Parser;
use flate2::write::GzEncoder;
use flate2::Compression;
use footfall_ingest::config::Config;
use footfall_ingest::router::{api_endpoint, app, ingest_direct, AppState};
use footfall_ingest::server::build_state;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Harness {
    dir: tempfile::TempDir,
    state: AppState,
}

impl Harness {
    fn new(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut argv = vec![
            "footfall-ingest".to_owned(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let settings = Config::try_parse_from(argv).unwrap().validate().unwrap();
        let state = build_state(settings).unwrap();
        Self { dir, state }
    }

    fn app(&self) -> Router {
        app(self.state.clone())
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = req;
        req.extensions_mut().insert(ConnectInfo(
            "203.0.113.77:5000".parse::<SocketAddr>().unwrap(),
        ));
        // As `server` dispatches: ingest calls directly, the rest through the Router.
        let resp = match api_endpoint(req.method(), req.uri().path()) {
            Some((route, endpoint)) => {
                ingest_direct(self.state.clone(), route, endpoint, req).await
            }
            None => self.app().oneshot(req).await.unwrap(),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.send(json_req(path, &body)).await;
        (s, b)
    }

    fn lines(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("data"))
    }
}

/// `server`'s direct path for ingest calls answers exactly as `app`'s routes for them do: status,
/// every header in order (content-length included) and body.
#[tokio::test]
async fn direct_path_answers_as_the_router_does() {
    let h = Harness::new(&[
        "--write-key",
        "k1:web",
        "--write-key",
        "shop:shop",
        "--allowed-origin",
        "shop=https://shop.example",
    ]);
    let msg = |id: &str| {
        json!({"type": "track", "event": "e", "anonymousId": "a", "messageId": id,
            "context": {"userAgent": "UA"}})
    };
    let cases: Vec<(&str, Option<&str>, Option<&str>, String)> = vec![
        ("/v1/track", Some("k1"), None, msg("d1").to_string()),
        (
            "/v1/track",
            Some("k1"),
            Some("https://a.example"),
            msg("d2").to_string(),
        ),
        ("/v1/track", None, None, msg("d3").to_string()),
        ("/v1/track", Some("nope"), None, msg("d4").to_string()),
        ("/v1/track", Some("k1"), None, "{bad".to_owned()),
        (
            "/v1/batch",
            Some("k1"),
            None,
            r#"{"batch":[{"type":"track"},5]}"#.to_owned(),
        ),
        (
            "/v1/identify",
            Some("k1"),
            None,
            r#"{"userId":"u"}"#.to_owned(),
        ),
        ("/v1/page", Some("k1"), None, msg("d5").to_string()),
        (
            "/v1/track",
            Some("shop"),
            Some("https://shop.example"),
            msg("d6").to_string(),
        ),
        (
            "/v1/track",
            Some("shop"),
            Some("https://evil.example"),
            msg("d7").to_string(),
        ),
    ];
    for (path, key, origin, body) in cases {
        let build = || {
            let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
            if let Some(k) = key {
                use base64::Engine;
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("{k}:"));
                b = b.header(header::AUTHORIZATION, format!("Basic {basic}"));
            }
            if let Some(o) = origin {
                b = b.header(header::ORIGIN, o);
            }
            let mut req = b.body(Body::from(body.clone())).unwrap();
            req.extensions_mut().insert(ConnectInfo(
                "203.0.113.77:5000".parse::<SocketAddr>().unwrap(),
            ));
            req
        };
        let via_router = h.app().oneshot(build()).await.unwrap();
        let req = build();
        let (route, endpoint) = api_endpoint(req.method(), req.uri().path()).unwrap();
        let direct = ingest_direct(h.state.clone(), route, endpoint, req).await;
        assert_eq!(via_router.status(), direct.status(), "{path} {body}");
        let headers = |r: &axum::response::Response| {
            r.headers()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(headers(&via_router), headers(&direct), "{path} {body}");
        let a = via_router.into_body().collect().await.unwrap().to_bytes();
        let b = direct.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(a, b, "{path} {body}");
    }
    assert!(api_endpoint(&axum::http::Method::GET, "/v1/track").is_none());
    assert!(api_endpoint(&axum::http::Method::POST, "/v1/track/").is_none());
    assert!(api_endpoint(&axum::http::Method::POST, "/healthz").is_none());
}

fn json_req(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "TestAgent/1")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Every line of every `*.ndjson` / `*.ndjson.open` under `dir`, parsed (a torn line fails).
fn read_lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ndjson")
                || p.to_string_lossy().ends_with(".ndjson.open")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(text.is_empty() || text.ends_with('\n'), "torn file {p:?}");
                for line in text.lines() {
                    out.push(serde_json::from_str(line).expect("each line is one JSON object"));
                }
            }
        }
    }
    out
}

fn track(id: &str) -> Value {
    json!({"type":"track","event":"Clicked","userId":"u1","messageId":id})
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn batch_is_written_and_enriched() {
    let h = Harness::new(&[]);
    let (status, body) = h
        .post(
            "/v1/batch",
            json!({
                "writeKey": "dev",
                "sentAt": "2024-01-01T00:00:10.000Z",
                "context": {"library": {"name": "footfall"}, "locale": "en"},
                "batch": [
                    {"type":"track","event":"A","anonymousId":"a1","timestamp":"2024-01-01T00:00:00.000Z",
                     "context":{"locale":"fr"}},
                    {"type":"page","name":"Home","userId":"u1","anonymousId":null},
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    let lines = h.lines();
    assert_eq!(lines.len(), 2);
    let a = lines.iter().find(|l| l["event"] == "A").unwrap();
    assert_eq!(a["source"], "dev");
    assert_eq!(a["context"]["ip"], "203.0.113.0");
    assert_eq!(a["context"]["userAgent"], "TestAgent/1");
    assert_eq!(a["context"]["locale"], "fr");
    assert_eq!(a["context"]["library"]["name"], "footfall");
    assert_eq!(a["originalTimestamp"], "2024-01-01T00:00:00.000Z");
    assert!(a.get("writeKey").is_none());
    // timestamp = receivedAt − 10 s
    let received = a["receivedAt"].as_str().unwrap();
    let ts = a["timestamp"].as_str().unwrap();
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(parse(received) - parse(ts), time::Duration::seconds(10));
    assert_eq!(received.len(), "2024-01-01T00:00:00.000Z".len());
    let page = lines.iter().find(|l| l["type"] == "page").unwrap();
    assert_eq!(page["messageId"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn every_single_message_endpoint() {
    let h = Harness::new(&[]);
    let cases = [
        ("/v1/track", json!({"event":"E","userId":"u"})),
        (
            "/v1/identify",
            json!({"userId":"u","traits":{"plan":"pro"}}),
        ),
        ("/v1/page", json!({"anonymousId":"a","name":"Home"})),
        ("/v1/screen", json!({"anonymousId":"a","name":"Main"})),
        ("/v1/group", json!({"userId":"u","groupId":"g"})),
        ("/v1/alias", json!({"userId":"u","previousId":"p"})),
    ];
    for (path, mut msg) in cases {
        msg["writeKey"] = json!("dev");
        let (status, body) = h.post(path, msg).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let mut types: Vec<String> = h
        .lines()
        .iter()
        .map(|l| l["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["alias", "group", "identify", "page", "screen", "track"]
    );
    // An explicit, contradicting type is rejected.
    let (status, body) = h
        .post(
            "/v1/track",
            json!({"writeKey":"dev","type":"identify","userId":"u"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["rejected"][0]["field"], "type");
}

#[tokio::test]
async fn auth_forms_and_failures() {
    let h = Harness::new(&["--write-key", "s3cret:web"]);
    let msg = json!({"event":"E","userId":"u"});
    // Basic auth: base64("s3cret:")
    let req = Request::post("/v1/track")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Basic czNjcmV0Og==")
        .body(Body::from(msg.to_string()))
        .unwrap();
    assert_eq!(h.send(req).await.0, StatusCode::OK);
    // Query string
    let (s, _) = h.post("/v1/track?writeKey=s3cret", msg.clone()).await;
    assert_eq!(s, StatusCode::OK);
    // Body
    let mut with_key = msg.clone();
    with_key["writeKey"] = json!("s3cret");
    assert_eq!(h.post("/v1/track", with_key).await.0, StatusCode::OK);
    assert_eq!(h.lines().len(), 3);
    assert!(h.lines().iter().all(|l| l["source"] == "web"));

    for (path, body) in [
        ("/v1/track", msg.clone()),
        ("/v1/track?writeKey=dev", msg.clone()),
        (
            "/v1/track",
            json!({"event":"E","userId":"u","writeKey":"s3cre"}),
        ),
    ] {
        let (s, b) = h.post(path, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(b["success"], false);
        assert_eq!(b["error"]["code"], "unauthorized");
    }
    let req = Request::post("/v1/track")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::from(msg.to_string()))
        .unwrap();
    assert_eq!(h.send(req).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.lines().len(), 3);
    // The key never reaches the disk.
    let all: String = h.lines().iter().map(|l| l.to_string()).collect();
    assert!(!all.contains("s3cret"));
}

#[tokio::test]
async fn media_types_encodings_and_limits() {
    let h = Harness::new(&[
        "--max-request-bytes",
        "2000",
        "--max-message-bytes",
        "500",
        "--max-batch-messages",
        "3",
    ]);
    let batch = json!({"writeKey":"dev","batch":[track("m1")]}).to_string();

    let req = |ct: &str, enc: Option<&str>, body: Vec<u8>| {
        let mut b = Request::post("/v1/batch").header(header::CONTENT_TYPE, ct);
        if let Some(e) = enc {
            b = b.header(header::CONTENT_ENCODING, e);
        }
        b.body(Body::from(body)).unwrap()
    };
    // text/plain (beacons) and gzip
    let (s, _, _) = h
        .send(req(
            "text/plain;charset=UTF-8",
            None,
            batch.clone().into_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let gz = json!({"writeKey":"dev","batch":[track("m2")]}).to_string();
    let (s, _, _) = h
        .send(req("application/json", Some("gzip"), gzip(gz.as_bytes())))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.lines().len(), 2);

    let (s, _, b) = h
        .send(req(
            "application/x-www-form-urlencoded",
            None,
            batch.clone().into_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(b["error"]["code"], "unsupported_media_type");
    let (s, _, _) = h
        .send(req(
            "application/json",
            Some("br"),
            batch.clone().into_bytes(),
        ))
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Content-Length over the cap: rejected before reading.
    let big = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "2001")
        .body(Body::from(vec![b' '; 2001]))
        .unwrap();
    let (s, _, b) = h.send(big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["error"]["code"], "payload_too_large");
    // Decoded size over the cap (gzip of a large, compressible body).
    let padded = json!({"writeKey":"dev","batch":[],"pad":"x".repeat(10_000)}).to_string();
    let (s, _, b) = h
        .send(req(
            "application/json",
            Some("gzip"),
            gzip(padded.as_bytes()),
        ))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b["error"]["message"].as_str().unwrap().contains("decoded"));
    // Too many messages.
    let four = json!({"writeKey":"dev","batch":[track("a"),track("b"),track("c"),track("d")]});
    let (s, b) = h.post("/v1/batch", four).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("4 messages"));
    // One over-size message is rejected; the others are written.
    let (s, b) = h
        .post(
            "/v1/batch",
            json!({"writeKey":"dev","batch":[track("ok1"),
                {"type":"track","event":"E","userId":"u","properties":{"p":"y".repeat(600)}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["accepted"], 1);
    assert_eq!(b["rejected"][0]["rule"], "max_size");
    // Truncated gzip.
    let full = gzip(batch.as_bytes());
    let (s, _, b) = h
        .send(req(
            "application/json",
            Some("gzip"),
            full[..full.len() - 6].to_vec(),
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_gzip");
    assert_eq!(h.lines().len(), 3);
}

#[tokio::test]
async fn bad_json_and_bad_shapes_are_400_with_a_message() {
    let h = Harness::new(&[]);
    let raw = |body: &'static str| {
        Request::post("/v1/batch?writeKey=dev")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let (s, _, b) = h.send(raw("{\"batch\": [")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_json");
    assert!(b["error"]["message"].as_str().unwrap().contains("EOF"));
    let (s, _, b) = h.send(raw("[1,2]")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_body");
    let (s, _, b) = h.send(raw("{\"batch\": {}}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["field"], "batch");
    let (s, _, b) = h.send(raw("{\"batch\": [], \"sentAt\": \"soon\"}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["field"], "sentAt");
    let (s, _, b) = h.send(raw("{\"batch\": [], \"context\": 3}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["field"], "context");
    assert!(h.lines().is_empty());
}

#[tokio::test]
async fn partial_batch_writes_the_valid_messages() {
    let h = Harness::new(&[]);
    let (s, b) = h
        .post(
            "/v1/batch",
            json!({"writeKey":"dev","batch":[
                track("ok-1"),
                {"type":"track","userId":"u"},
                {"type":"alias","userId":"u"},
                track("ok-2"),
                {"type":"bogus","userId":"u"},
                {"type":"track","event":"E"},
                {"type":"track","event":"E","userId":"u","timestamp":"yesterday"},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["success"], false);
    assert_eq!(b["accepted"], 2);
    let rejected: Vec<(u64, &str, &str)> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(!r["message"].as_str().unwrap().is_empty());
            (
                r["index"].as_u64().unwrap(),
                r["field"].as_str().unwrap(),
                r["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "event", "required"),
            (2, "previousId", "required"),
            (4, "type", "enum"),
            (5, "userId", "required"),
            (6, "timestamp", "format"),
        ]
    );
    let lines = h.lines();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"ok-1") && ids.contains(&"ok-2"));
    let metrics = h.state.metrics.render();
    assert!(
        metrics.contains("footfall_messages_rejected_total{rule=\"required\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn duplicates_are_acknowledged_but_written_once() {
    let h = Harness::new(&[]);
    for _ in 0..3 {
        let (s, _) = h
            .post(
                "/v1/batch",
                json!({"writeKey":"dev","batch":[track("dup-1"), track("dup-1")]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    // Concurrent requests carrying the same id: exactly one is written.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = h.app();
        tasks.push(tokio::spawn(async move {
            let mut req = json_req(
                "/v1/batch",
                &json!({"writeKey":"dev","batch":[track("dup-2")]}),
            );
            req.extensions_mut()
                .insert(ConnectInfo("127.0.0.1:1".parse::<SocketAddr>().unwrap()));
            app.oneshot(req).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let lines = h.lines();
    assert_eq!(
        lines.iter().filter(|l| l["messageId"] == "dup-1").count(),
        1
    );
    assert_eq!(
        lines.iter().filter(|l| l["messageId"] == "dup-2").count(),
        1
    );
    let metrics = h.state.metrics.render();
    assert!(
        metrics.contains("footfall_messages_deduplicated_total 24"),
        "{metrics}"
    );
    assert!(
        metrics.contains("footfall_messages_accepted_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn cors_preflight_and_per_key_origins() {
    let h = Harness::new(&[
        "--write-key",
        "open:web",
        "--write-key",
        "shop:shop",
        "--allowed-origin",
        "shop=https://shop.example",
    ]);
    let preflight = |uri: &str, origin: &str| {
        Request::options(uri)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (s, hd, _) = h.send(preflight("/v1/batch", "https://any.example")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://any.example"
    );
    assert!(hd[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(hd[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .contains("content-type"));
    // A key restricted to one origin, named in the query string.
    let (s, hd, _) = h
        .send(preflight("/v1/batch?writeKey=shop", "https://evil.example"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(hd.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let (s, hd, _) = h
        .send(preflight("/v1/track?writeKey=shop", "https://shop.example"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );

    // Actual requests carry the origin back; a disallowed origin is 403 and nothing is written.
    let post = |key: &str, origin: &str| {
        Request::post("/v1/batch")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::ORIGIN, origin)
            .body(Body::from(
                json!({"writeKey":key,"batch":[track(&format!("{key}{origin}"))]}).to_string(),
            ))
            .unwrap()
    };
    let (s, hd, _) = h.send(post("shop", "https://shop.example")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    let (s, hd, b) = h.send(post("shop", "https://evil.example")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["error"]["code"], "origin_not_allowed");
    assert!(hd.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let (s, hd, _) = h.send(post("open", "https://evil.example")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://evil.example"
    );
    // Errors are readable by the page too (the SDK must see its 401).
    let (s, hd, _) = h.send(post("nope", "https://any.example")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://any.example"
    );
    assert_eq!(h.lines().len(), 2);
}

#[tokio::test]
async fn healthz_metrics_404_405() {
    let h = Harness::new(&[]);
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let (s, _, b) = h.send(get("/healthz")).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status":"ok"})));
    let (s, _, b) = h.send(get("/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
    let (s, _, b) = h.send(get("/v1/batch")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b["error"]["code"], "method_not_allowed");
    h.post(
        "/v1/track",
        json!({"writeKey":"dev","event":"E","userId":"u"}),
    )
    .await;
    let resp = h.app().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for needle in [
        "footfall_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
        "footfall_http_requests_total{route=\"other\",status=\"404\"} 1",
        "footfall_http_requests_total{route=\"/v1/batch\",status=\"405\"} 1",
        "footfall_http_requests_total{route=\"/v1/track\",status=\"200\"} 1",
        "footfall_messages_accepted_total 1",
        "footfall_sink_fsync_seconds_count 1",
        "footfall_sink_write_seconds_count 1",
        "footfall_bytes_in_total ",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}

#[tokio::test]
async fn failed_write_is_503_and_acknowledges_nothing() {
    let h = Harness::new(&[]);
    // Put a file where today's (and tomorrow's, in case the clock crosses midnight) day folder
    // must be created: the writer cannot open a data file.
    let now = time::OffsetDateTime::now_utc();
    for t in [now, now + time::Duration::days(1)] {
        let name = format!(
            "dt={:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        );
        std::fs::write(h.dir.path().join("data/dev").join(name), b"").unwrap();
    }
    let (s, hd, b) = h
        .send(json_req(
            "/v1/batch",
            &json!({"writeKey":"dev","batch":[track("x1")]}),
        ))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["error"]["code"], "unavailable");
    assert!(hd.contains_key(header::RETRY_AFTER));
    assert!(h.lines().is_empty());
    // Space "returns": the same message is accepted and written once (it was never marked seen).
    for t in [now, now + time::Duration::days(1)] {
        let name = format!(
            "dt={:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        );
        std::fs::remove_file(h.dir.path().join("data/dev").join(name)).unwrap();
    }
    let (s, _) = h
        .post("/v1/batch", json!({"writeKey":"dev","batch":[track("x1")]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.lines().len(), 1);
}

#[tokio::test]
async fn static_dir_is_served_behind_the_api() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::create_dir(site.path().join("v1")).unwrap();
    std::fs::write(site.path().join("v1/batch"), "shadowed").unwrap();
    std::fs::write(site.path().join("healthz"), "shadowed").unwrap();
    let h = Harness::new(&["--static-dir", &site.path().display().to_string()]);
    let resp = h
        .app()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, _, b) = h
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!((s, b["status"].clone()), (StatusCode::OK, json!("ok")));
    let (s, _) = h
        .post("/v1/batch", json!({"writeKey":"dev","batch":[track("s1")]}))
        .await;
    assert_eq!(s, StatusCode::OK);
}

fn from(req: Request<Body>, addr: &str) -> Request<Body> {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    req
}

async fn send_raw(h: &Harness, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = h.app().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn rate_limit_per_address_is_429_with_retry_after() {
    let h = Harness::new(&["--rate-limit-ip", "0.5", "--rate-limit-ip-burst", "2"]);
    let body = || json!({"writeKey":"dev","batch":[track("r")]});
    for _ in 0..2 {
        let (s, _, _) = send_raw(&h, from(json_req("/v1/batch", &body()), "198.51.100.7:1")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let req = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::ORIGIN, "https://shop.example")
        .body(Body::from(body().to_string()))
        .unwrap();
    let (s, hd, b) = send_raw(&h, from(req, "198.51.100.7:2")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // 2 s for the next token (1 if the machine stalled for over a second in between).
    let wait: u64 = hd[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(b["error"]["code"], "rate_limited");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("address"),
        "{b}"
    );
    // The SDK can read the status and Retry-After cross-origin.
    assert_eq!(
        hd[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    assert_eq!(hd[header::ACCESS_CONTROL_EXPOSE_HEADERS], "retry-after");
    // Refused before any key check: an unknown key is 429 too, not 401 (no free key guessing).
    let (s, _, _) = send_raw(
        &h,
        from(
            json_req("/v1/batch?writeKey=guess", &body()),
            "198.51.100.7:3",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Another address, and another host in a different IPv6 /64, are not affected; the same /64 is.
    let (s, _, _) = send_raw(&h, from(json_req("/v1/batch", &body()), "198.51.100.8:1")).await;
    assert_eq!(s, StatusCode::OK);
    for (addr, want) in [
        ("[2001:db8:0:1::1]:1", StatusCode::OK),
        ("[2001:db8:0:1::2]:1", StatusCode::OK),
        ("[2001:db8:0:1:ffff::3]:1", StatusCode::TOO_MANY_REQUESTS),
        ("[2001:db8:0:2::1]:1", StatusCode::OK),
    ] {
        let (s, _, _) = send_raw(&h, from(json_req("/v1/batch", &body()), addr)).await;
        assert_eq!(s, want, "{addr}");
    }
    // Refused requests wrote nothing (the one id was written once and then deduplicated).
    assert_eq!(h.lines().len(), 1);
    let resp = h
        .app()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("footfall_rate_limited_total{scope=\"address\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_per_write_key() {
    let h = Harness::new(&[
        "--write-key",
        "ka:a",
        "--write-key",
        "kb:b",
        "--rate-limit-key",
        "0.25",
        "--rate-limit-key-burst",
        "1",
    ]);
    let (s, _) = h
        .post("/v1/batch", json!({"writeKey":"ka","batch":[track("1")]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Key in the body, in the query and in Basic auth all count against the same key.
    let (s, hd, b) = h
        .send(json_req(
            "/v1/batch",
            &json!({"writeKey":"ka","batch":[track("2")]}),
        ))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = hd[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((3..=4).contains(&wait), "{wait}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("key"),
        "{b}"
    );
    let (s, _) = h
        .post("/v1/batch?writeKey=ka", json!({"batch":[track("2")]}))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Another key has its own bucket.
    let (s, _) = h
        .post("/v1/batch?writeKey=kb", json!({"batch":[track("3")]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<String> = h
        .lines()
        .iter()
        .map(|l| l["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn bots_are_marked_or_dropped() {
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    let batch = json!({"writeKey":"dev","batch":[
        {"type":"page","anonymousId":"a","messageId":"human","context":{"userAgent":chrome}},
        {"type":"page","anonymousId":"a","messageId":"crawler","context":{"userAgent":googlebot}},
        {"type":"page","anonymousId":"a","messageId":"headless",
         "context":{"userAgent":"Mozilla/5.0 HeadlessChrome/126.0.0.0"}},
        {"type":"page","anonymousId":"a","messageId":"header-only"},
    ]});
    let req = || {
        Request::post("/v1/batch")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::USER_AGENT, googlebot)
            .body(Body::from(batch.to_string()))
            .unwrap()
    };
    // Default: marked and written.
    let h = Harness::new(&[]);
    let (s, _, _) = h.send(req()).await;
    assert_eq!(s, StatusCode::OK);
    let lines = h.lines();
    assert_eq!(lines.len(), 4);
    for l in &lines {
        let bot = l["context"].get("bot").cloned();
        if l["messageId"] == "human" {
            assert_eq!(bot, None, "{l}");
        } else {
            assert_eq!(bot, Some(json!(true)), "{l}");
        }
    }
    // --drop-bots: acknowledged, only the human is written.
    let h = Harness::new(&["--drop-bots"]);
    let (s, _, b) = h.send(req()).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"success":true})));
    let lines = h.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["messageId"], "human");
    let resp = h
        .app()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("footfall_messages_bot_total{action=\"dropped\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("footfall_messages_accepted_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_leave_the_public_router_when_metrics_listen_is_set() {
    let h = Harness::new(&["--metrics-listen", "127.0.0.1:0"]);
    let (s, _, b) = h
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
    let resp = footfall_ingest::router::metrics_app(h.state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = footfall_ingest::router::metrics_app(h.state.clone())
        .oneshot(Request::post("/v1/batch").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "no ingest on the private address"
    );
}
