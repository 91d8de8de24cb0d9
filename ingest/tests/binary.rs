//! Integration tests against the real `footfall-ingest` binary on an ephemeral loopback port.
//!
//! Each test starts its own process with its own data directory, talks to it with a real HTTP
//! client (reqwest) or a raw socket (for transport-level cases: stalled bodies, slow headers,
//! connection caps, shutdown mid-request) and asserts on the NDJSON files it leaves behind.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::*;

#[tokio::test]
async fn every_endpoint_each_auth_form_and_body_encoding() {
    let srv = Server::start(&["--write-key", "k-web:web", "--write-key", "k-app:app"]);
    // Body writeKey, text/plain (what beacons send).
    let (s, b) = srv
        .post(
            "/v1/batch",
            "text/plain;charset=UTF-8",
            json!({"writeKey":"k-web","batch":[track("b1"), track("b2")]}).to_string(),
        )
        .await;
    assert_eq!((s, b), (200, json!({"success":true})));
    // ?writeKey= on each single-message endpoint.
    for (path, msg) in [
        (
            "/v1/track",
            json!({"event":"E","userId":"u","messageId":"t1"}),
        ),
        (
            "/v1/identify",
            json!({"userId":"u","traits":{"a":1},"messageId":"i1"}),
        ),
        (
            "/v1/page",
            json!({"anonymousId":"a","name":"Home","messageId":"p1"}),
        ),
        (
            "/v1/screen",
            json!({"anonymousId":"a","name":"S","messageId":"s1"}),
        ),
        (
            "/v1/group",
            json!({"userId":"u","groupId":"g","messageId":"g1"}),
        ),
        (
            "/v1/alias",
            json!({"userId":"u","previousId":"a","messageId":"a1"}),
        ),
    ] {
        let (s, b) = srv.post_json(&format!("{path}?writeKey=k-web"), msg).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    // Basic auth, gzip body.
    let body = gzip(json!({"batch":[track("z1")]}).to_string().as_bytes());
    let resp = srv
        .client
        .post(srv.url("/v1/batch"))
        .basic_auth("k-app", Some(""))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    // The 200 is built by hand (router::success): its framing headers are exact.
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["content-length"], "16");
    assert_eq!(h["vary"], "Origin");
    assert_eq!(status_json(resp).await, (200, json!({"success":true})));

    let lines = read_lines(&srv.data());
    assert_eq!(lines.len(), 9);
    let by_id = |id: &str| lines.iter().find(|l| l["messageId"] == id).unwrap().clone();
    assert_eq!(by_id("z1")["source"], "app");
    for id in ["b1", "b2", "t1", "i1", "p1", "s1", "g1", "a1"] {
        assert_eq!(by_id(id)["source"], "web", "{id}");
    }
    assert_eq!(by_id("g1")["type"], "group");
    // One folder per source, Hive-style day folders, HH-SEQ file names.
    for file in data_files(&srv.data()) {
        let rel = file
            .strip_prefix(srv.data())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert!(["web", "app"].contains(&parts[0]), "{rel}");
        assert!(parts[1].starts_with("dt=") && parts[1].len() == 13, "{rel}");
        assert!(
            parts[2].ends_with(".ndjson.open") && parts[2].as_bytes()[2] == b'-',
            "{rel}"
        );
    }
    let all = std::fs::read_to_string(&data_files(&srv.data())[0]).unwrap();
    assert!(!all.contains("k-web") && !all.contains("k-app"));
}

#[tokio::test]
async fn limits_and_error_bodies() {
    let srv = Server::start(&[
        "--max-request-bytes",
        "4000",
        "--max-message-bytes",
        "1000",
        "--max-batch-messages",
        "5",
        "--body-read-timeout",
        "1",
    ]);
    // 401: missing and unknown keys.
    let (s, b) = srv
        .post_json("/v1/batch", json!({"batch":[track("x")]}))
        .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (s, _) = srv
        .post_json("/v1/batch?writeKey=nope", json!({"batch":[track("x")]}))
        .await;
    assert_eq!(s, 401);
    // 415
    let (s, b) = srv
        .post("/v1/batch?writeKey=dev", "application/xml", "<x/>")
        .await;
    assert_eq!(s, 415);
    assert_eq!(b["error"]["code"], "unsupported_media_type");
    // 413: Content-Length over the cap (answered without reading the body).
    let (s, b) = srv
        .post(
            "/v1/batch?writeKey=dev",
            "application/json",
            vec![b' '; 4001],
        )
        .await;
    assert_eq!(s, 413);
    assert_eq!(b["error"]["code"], "payload_too_large");
    let resp = raw_exchange(
        srv.port,
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    // 413: decoded size over the cap, from a small gzip body.
    let bomb = gzip(
        json!({"writeKey":"dev","batch":[],"pad":"0".repeat(1_000_000)})
            .to_string()
            .as_bytes(),
    );
    assert!(bomb.len() < 4000);
    let resp = srv
        .client
        .post(srv.url("/v1/batch"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let (s, b) = status_json(resp).await;
    assert_eq!(s, 413);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("decoded"),
        "{b}"
    );
    // 413: too many messages.
    let six: Vec<Value> = (0..6).map(|i| track(&format!("m{i}"))).collect();
    let (s, _) = srv
        .post_json("/v1/batch?writeKey=dev", json!({"batch":six}))
        .await;
    assert_eq!(s, 413);
    // 400: invalid JSON, with the parser's message.
    let (s, b) = srv
        .post(
            "/v1/batch?writeKey=dev",
            "application/json",
            "{\"batch\":[}",
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["code"], "invalid_json");
    assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    // 408: the body stalls.
    let started = Instant::now();
    let resp = raw_exchange(
        srv.port,
        b"POST /v1/batch?writeKey=dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"batch\":",
        Duration::from_secs(5),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(read_lines(&srv.data()).is_empty());
}

/// Headers that never finish (`request_line`, one header, no blank line) on `port`: the server
/// closes the connection, unanswered, once a 1 s `--header-read-timeout` is over.
async fn assert_slow_headers_cut_off(port: u16, request_line: &str) {
    let started = Instant::now();
    let request = format!("{request_line} HTTP/1.1\r\nHost: x\r\n");
    let resp = raw_exchange(port, request.as_bytes(), Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(!resp.contains("200"), "{resp}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "slow headers were cut off after {elapsed:?}"
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let srv = Server::start(&["--header-read-timeout", "1"]);
    assert_slow_headers_cut_off(srv.port, "POST /v1/batch").await;
    // An idle keep-alive connection is closed by the same timeout, so idle clients cannot hold
    // connection slots.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "connection should be closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server is still healthy.
    let resp = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Opens `cap` idle connections to `port` and checks that one more is not served within 500 ms
/// (a GET of `url`); returns the idle ones, which hold the slots while they live.
async fn fill_connection_cap(port: u16, cap: usize, url: &str) -> Vec<TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..cap {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        short.get(url).send().await.is_err(),
        "connection {} past a cap of {cap} was served",
        cap + 1
    );
    idle
}

#[tokio::test]
async fn connection_cap_holds_further_connections_back() {
    let srv = Server::start(&["--max-connections", "2"]);
    let idle = fill_connection_cap(srv.port, 2, &srv.url("/healthz")).await;
    drop(idle);
    let resp = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// The private `/metrics` listener holds its connections to the same header timeout as the
/// public one, and to a cap of its own (`server::METRICS_MAX_CONNECTIONS`, 8).
#[tokio::test]
async fn the_metrics_listener_cuts_slow_headers_and_caps_connections() {
    let srv = Server::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--header-read-timeout",
        "1",
    ]);
    let log = srv.stderr();
    let port: u16 = log
        .split("metrics listening on http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in the log: {log}"));
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let resp = srv.client.get(&metrics_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let started = Instant::now();
    assert_slow_headers_cut_off(port, "GET /metrics").await;

    // Eight idle connections fill the cap: a ninth waits...
    let idle = fill_connection_cap(port, 8, &metrics_url).await;
    // ...until the header timeout closes the idle ones and frees their slots.
    let resp = srv.client.get(&metrics_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8));
    // The public listener was never affected.
    let resp = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(idle);
}

#[tokio::test]
async fn partial_batches_dedupe_skew_and_ip_anonymisation() {
    let srv = Server::start(&[]);
    let sent_at = "2020-01-01T00:01:00.000Z";
    let (s, b) = srv
        .post_json(
            "/v1/batch?writeKey=dev",
            json!({"sentAt": sent_at, "batch":[
                {"type":"track","event":"Skewed","userId":"u","anonymousId":null,"messageId":"s1",
                 "timestamp":"2020-01-01T00:00:00.000Z"},
                {"type":"track","userId":"u","messageId":"bad"},
                {"type":"identify","anonymousId":"a","messageId":"s2"},
            ]}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["accepted"], 2);
    assert_eq!(
        b["rejected"],
        json!([{"index":1,"field":"event","rule":"required","message":"event is required"}])
    );

    // Resending the whole batch (a client retry) writes nothing new.
    let (s, _) = srv
        .post_json(
            "/v1/batch?writeKey=dev",
            json!({"batch":[track("s1"), track("s2"), track("s3")]}),
        )
        .await;
    assert_eq!(s, 200);

    let lines = read_lines(&srv.data());
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let skewed = lines.iter().find(|l| l["messageId"] == "s1").unwrap();
    assert_eq!(skewed["event"], "Skewed");
    assert_eq!(skewed["originalTimestamp"], "2020-01-01T00:00:00.000Z");
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    // The client stamped the event 60 s before sending: timestamp = receivedAt − 60 s.
    assert_eq!(
        parse(&skewed["receivedAt"]) - parse(&skewed["timestamp"]),
        time::Duration::seconds(60)
    );
    assert!(parse(&skewed["receivedAt"]).year() >= 2025);
    assert_eq!(skewed["context"]["ip"], "127.0.0.0");

    let metrics = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("footfall_messages_deduplicated_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("footfall_messages_rejected_total{rule=\"required\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forwarded_for_and_keep_ip() {
    // Without --trust-proxy X-Forwarded-For is ignored; with it, the leftmost address is used.
    for (args, want) in [
        (vec![], "127.0.0.0"),
        (vec!["--trust-proxy"], "2001:db8:1::"),
        (vec!["--trust-proxy", "--keep-ip"], "2001:db8:1:2::3"),
    ] {
        let srv = Server::start(&args);
        let resp = srv
            .client
            .post(srv.url("/v1/track?writeKey=dev"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "2001:db8:1:2::3, 10.0.0.1")
            .header("user-agent", "Agent/9")
            .body(json!({"event":"E","userId":"u"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let lines = read_lines(&srv.data());
        assert_eq!(lines[0]["context"]["ip"], want, "{args:?}");
        assert_eq!(lines[0]["context"]["userAgent"], "Agent/9");
    }
}

#[tokio::test]
async fn cors_preflight_over_http() {
    let srv = Server::start(&[
        "--write-key",
        "shop",
        "--allowed-origin",
        "shop=https://shop.example",
    ]);
    let resp = srv
        .client
        .request(reqwest::Method::OPTIONS, srv.url("/v1/batch"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(resp.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let resp = srv
        .client
        .request(reqwest::Method::OPTIONS, srv.url("/v1/batch"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn sigterm_drains_the_in_flight_request_and_exits_zero() {
    drains_on(libc::SIGTERM).await;
}

#[tokio::test]
async fn sigint_drains_the_in_flight_request_and_exits_zero() {
    drains_on(libc::SIGINT).await;
}

/// Stop accepting, finish the request in flight, sync, finish the file, exit 0.
async fn drains_on(sig: libc::c_int) {
    let mut srv = Server::start(&[]);
    let body = json!({"writeKey":"dev","batch":[track("drain-1")]}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).await.unwrap();
    let request = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    srv.signal(sig);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No longer accepting.
    assert!(TcpStream::connect(("127.0.0.1", srv.port)).await.is_err());
    // The in-flight request completes and is acknowledged.
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("{\"success\":true}"), "{resp}");

    let status = srv.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", srv.stderr());
    // Flushed, synced and finished: the file lost its `.open` suffix.
    let files = data_files(&srv.data());
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().ends_with(".ndjson"), "{files:?}");
    let lines = read_lines(&srv.data());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["messageId"], "drain-1");
}

#[tokio::test]
async fn torn_last_line_is_repaired_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let day = dir.path().join("data/dev/dt=2024-01-01");
    std::fs::create_dir_all(&day).unwrap();
    std::fs::write(
        day.join("10-0000.ndjson.open"),
        b"{\"messageId\":\"whole\"}\n{\"messageId\":\"to",
    )
    .unwrap();
    let srv = Server::start_in(dir, &[]);
    let repaired = day.join("10-0000.ndjson");
    assert_eq!(
        std::fs::read(&repaired).unwrap(),
        b"{\"messageId\":\"whole\"}\n"
    );
    assert!(!day.join("10-0000.ndjson.open").exists());
    let log = srv.stderr();
    assert!(
        log.contains("torn") && log.contains("10-0000.ndjson.open"),
        "{log}"
    );
}

#[tokio::test]
async fn dedupe_window_survives_a_crash_and_a_clean_restart() {
    let mut srv = Server::start(&[]);
    let (s, _) = srv
        .post_json(
            "/v1/batch?writeKey=dev",
            json!({"batch":[track("r1"), track("r2")]}),
        )
        .await;
    assert_eq!(s, 200);
    // kill -9: the file is still `.open`; the next start repairs it, then reads it back.
    srv.kill9_and_restart(&[]);
    let (s, b) = srv
        .post_json(
            "/v1/batch?writeKey=dev",
            json!({"batch":[track("r1"), track("r2"), track("r3")]}),
        )
        .await;
    assert_eq!((s, b), (200, json!({"success":true})));
    // A clean restart (SIGTERM) too; r3 is now in a finished file.
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(10)).success());
    srv.kill9_and_restart(&[]);
    let (s, _) = srv
        .post_json(
            "/v1/batch?writeKey=dev",
            json!({"batch":[track("r3"), track("r1"), track("r4")]}),
        )
        .await;
    assert_eq!(s, 200);

    let lines = read_lines(&srv.data());
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["messageId"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"]);
    let metrics = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("footfall_messages_deduplicated_total 2"),
        "{metrics}"
    );
    let log = srv.stderr();
    assert!(log.contains("dedupe window rebuilt"), "{log}");
    assert!(log.contains("\"ids\":3"), "{log}");

    // A window shorter than the ids' age forgets them: the rebuild honours the window.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    srv.kill9_and_restart(&["--dedupe-window", "2"]);
    let (s, _) = srv
        .post_json("/v1/batch?writeKey=dev", json!({"batch":[track("r1")]}))
        .await;
    assert_eq!(s, 200);
    let n = read_lines(&srv.data())
        .iter()
        .filter(|l| l["messageId"] == "r1")
        .count();
    assert_eq!(n, 2, "r1 aged out of a 2 s window, so it is written again");
}

#[tokio::test]
async fn metrics_on_a_private_address_and_429_over_http() {
    let srv = Server::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--rate-limit-key",
        "0.2",
        "--rate-limit-key-burst",
        "3",
    ]);
    let log = srv.stderr();
    let at = log
        .find("metrics listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{log}"));
    let port: u16 = log[at + "metrics listening on http://127.0.0.1:".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert_ne!(port, srv.port);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let resp = srv
            .client
            .post(srv.url("/v1/track?writeKey=dev"))
            .header("content-type", "application/json")
            .body(json!({"event":"E","userId":"u","messageId":format!("q{i}")}).to_string())
            .send()
            .await
            .unwrap();
        if let Some(v) = resp.headers().get("retry-after") {
            retry_after = Some(v.to_str().unwrap().to_owned());
        }
        let (s, b) = status_json(resp).await;
        if s == 429 {
            assert_eq!(b["error"]["code"], "rate_limited", "{b}");
        }
        statuses.push(s);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // 5 s until the next token (4 if the machine stalled for a second in between).
    assert!(
        matches!(retry_after.as_deref(), Some("5" | "4")),
        "{retry_after:?}"
    );
    // Public /metrics is gone; the private one has the counts.
    let resp = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let text = srv
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("footfall_rate_limited_total{scope=\"key\"} 2"),
        "{text}"
    );
    assert!(text.contains("footfall_http_requests_total{route=\"/metrics\",status=\"404\"} 1"));
    let resp = srv
        .client
        .post(format!("http://127.0.0.1:{port}/v1/batch?writeKey=dev"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "no ingest on the metrics address");
    assert_eq!(read_lines(&srv.data()).len(), 3);
}

#[tokio::test]
async fn data_files_are_0600_in_0700_directories() {
    use std::os::unix::fs::PermissionsExt;
    // A fresh data dir, a small rotation size so finished and open files both exist.
    let mut srv = Server::start(&["--write-key", "k1:web", "--rotate-bytes", "200"]);
    for i in 0..3 {
        let (s, _) = srv
            .post_json(
                "/v1/batch?writeKey=k1",
                json!({"batch":[track(&format!("p{i}"))]}),
            )
            .await;
        assert_eq!(s, 200);
    }
    // Also a file finished by crash recovery.
    srv.kill9_and_restart(&["--write-key", "k1:web"]);
    let files = data_files(&srv.data());
    assert!(files.len() >= 3, "{files:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for f in &files {
        assert_eq!(mode(f), 0o600, "{f:?}");
        let mut dir = f.parent().unwrap();
        while dir != srv.dir.path() {
            assert_eq!(mode(dir), 0o700, "{dir:?}");
            dir = dir.parent().unwrap();
        }
    }
    // A data directory that existed before, open to others, is made private too.
    let dir = tempfile::tempdir().unwrap();
    let pre = dir.path().join("data");
    std::fs::create_dir_all(pre.join("web")).unwrap();
    for d in [&pre, &pre.join("web")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let opened = Server::start_in(dir, &["--write-key", "k1:web"]);
    assert_eq!(mode(&opened.data()), 0o700);
    assert_eq!(mode(&opened.data().join("web")), 0o700);
    assert!(opened
        .stderr()
        .contains("made an existing data directory private"));
    // Source names become directory names only after validation: no traversal.
    let out = Command::new(BIN)
        .args(["--write-key", "k:..", "--data-dir"])
        .arg(srv.data())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!srv.dir.path().join("k").exists());
}

#[test]
fn bad_configuration_exits_non_zero_with_one_line() {
    for args in [
        vec!["--write-key", "k:../../etc"],
        vec!["--fsync", "maybe"],
        vec!["--listen", "localhost"],
        vec!["--max-request-bytes", "0"],
        vec!["--allowed-origin", "ghost=https://x.example"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("footfall-ingest: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A start-up failure (the address is taken) is one line too, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--listen")
        .arg(taken.local_addr().unwrap().to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("footfall-ingest: "), "{stderr}");
    assert_eq!(stderr.matches("footfall-ingest: ").count(), 1, "{stderr}");
    // Env vars are read too.
    let out = Command::new(BIN)
        .env("FOOTFALL_FSYNC", "maybe")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--listen",
        "--data-dir",
        "--write-key",
        "--allowed-origin",
        "--fsync",
        "--max-message-bytes",
        "--max-request-bytes",
        "--max-batch-messages",
        "--keep-ip",
        "--trust-proxy",
        "--log-format",
        "--static-dir",
        "FOOTFALL_LISTEN",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
