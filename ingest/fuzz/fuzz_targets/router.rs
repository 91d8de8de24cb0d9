//! Fuzz target: a whole ingest call through the production request path — `router::ingest_direct`
//! (framing and key checks, body decoding, `router::encode`'s glue around the line pipeline, the
//! sink and its writer thread, the response) on a real `AppState` writing into a temp dir — held
//! to the reference (`line::differential::reference`: `validate_message` + `enrich` on the body
//! parsed as a `Value`).
//!
//! Two header bytes, then the raw body. The first picks the endpoint: bit 7 set, `/v1/batch`;
//! else `/v1/<type>` (type = low bits mod 6). The second: bit 0 sends the write key as
//! `?writeKey=dev` (else only a body `writeKey` can authenticate), bit 1 `text/plain` instead of
//! `application/json`, bit 2 gzips the body.
//! Properties: never a panic; the verdict agrees with the reference — 200 exactly when every
//! message is accepted, a 400 `rejected` answer with the same accepted count and the same
//! (index, field, rule, message) list, a body-level 4xx exactly when the reference refuses the
//! body; 401 only without a usable key; the error body is JSON with a code; and what the sink
//! appended is whole lines, each one JSON object, no more of them than were accepted (a message
//! id seen before is deduplicated, not written twice).
#![no_main]

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request};
use clap::Parser;
use footfall_ingest::config::Config;
use footfall_ingest::line::differential::{reference, Opts, DEFAULT};
use footfall_ingest::router::{api_endpoint, ingest_direct, AppState};
use footfall_ingest::server::build_state;
use footfall_ingest::validate::MessageType;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TYPES: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];
/// Files rotate at this size so a long run's finished files can be deleted as it goes.
const ROTATE_BYTES: u64 = 4 * 1024 * 1024;

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    data: PathBuf,
    /// The `.open` file being followed and how much of it has been checked.
    tail: Mutex<(Option<PathBuf>, u64)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let tmp = std::env::temp_dir();
        // Data dirs of earlier runs whose process is gone (libFuzzer exits without unwinding).
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("footfall-fuzz-router-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let data = tmp.join(format!("footfall-fuzz-router-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let rotate = ROTATE_BYTES.to_string();
        let argv = [
            "footfall-ingest",
            "--data-dir",
            data.to_str().unwrap(),
            "--fsync",
            "never",
            "--rotate-bytes",
            &rotate,
            "--dedupe-capacity",
            "100000",
        ];
        let settings = Config::try_parse_from(argv).unwrap().validate().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let state = rt.block_on(async { build_state(settings).unwrap() });
        World {
            rt,
            state,
            data,
            tail: Mutex::new((None, 0)),
        }
    })
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The lines appended since the last call: whole lines only, each one JSON object. Finished
/// files are checked to their end, then deleted.
fn appended_lines(w: &World) -> usize {
    let mut tail = w.tail.lock().unwrap();
    let mut files = Vec::new();
    files_under(&w.data, &mut files);
    files.sort();
    let mut count = 0;
    let mut check = |path: &Path, from: u64| -> u64 {
        let mut f = std::fs::File::open(path).unwrap();
        f.seek(SeekFrom::Start(from)).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        assert!(
            bytes.is_empty() || bytes.last() == Some(&b'\n'),
            "a torn line in {}: {:?}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        );
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(line)));
            assert!(v.is_object(), "not an object: {v}");
            assert!(v.get("writeKey").is_none(), "writeKey written: {v}");
            count += 1;
        }
        from + bytes.len() as u64
    };
    let (followed, offset) = (tail.0.clone(), tail.1);
    for path in files {
        let name = path.to_string_lossy();
        if name.ends_with(".ndjson.open") {
            let from = if followed.as_ref() == Some(&path) {
                offset
            } else {
                0
            };
            let end = check(&path, from);
            *tail = (Some(path), end);
        } else if name.ends_with(".ndjson") {
            // Finished since the last call (rotation): the rest of it, then it goes.
            let from = if followed.as_ref().map(|p| p.with_extension("")) == Some(path.clone()) {
                offset
            } else {
                0
            };
            check(&path, from);
            let _ = std::fs::remove_file(&path);
        }
    }
    count
}

fuzz_target!(|data: &[u8]| {
    let [endpoint, flags, raw @ ..] = data else {
        return;
    };
    let w = world();
    let (path, implied) = if endpoint & 0x80 != 0 {
        ("/v1/batch".to_owned(), None)
    } else {
        let i = (endpoint & 0x7f) as usize % 6;
        (format!("/v1/{}", TYPES[i]), Some(MessageType::ALL[i]))
    };
    let key_in_query = flags & 1 != 0;
    let uri = if key_in_query {
        format!("{path}?writeKey=dev")
    } else {
        path.clone()
    };
    let mut req = Request::post(uri).header(
        header::CONTENT_TYPE,
        if flags & 2 != 0 {
            "text/plain;charset=UTF-8"
        } else {
            "application/json"
        },
    );
    let body = if flags & 4 != 0 {
        req = req.header(header::CONTENT_ENCODING, "gzip");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(raw).unwrap();
        gz.finish().unwrap()
    } else {
        raw.to_vec()
    };
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut().insert(ConnectInfo(
        "203.0.113.77:5000".parse::<SocketAddr>().unwrap(),
    ));
    let (route, ep) = api_endpoint(req.method(), &path).expect("an ingest route");
    let (status, answer) = w.rt.block_on(async {
        let resp = ingest_direct(w.state.clone(), route, ep, req).await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).expect("a JSON answer"),
        )
    });
    let written = appended_lines(w);

    let text = std::str::from_utf8(raw).ok();
    let opts = Opts { implied, ..DEFAULT };
    let expected = text.and_then(|t| reference(t, &opts));
    let code = answer["error"]["code"].as_str().unwrap_or("");
    match status {
        200 => {
            assert_eq!(answer, serde_json::json!({"success": true}));
            let verdicts = expected
                .unwrap_or_else(|| panic!("200 for a body the reference refuses: {text:?}"));
            assert!(
                verdicts.iter().all(Result::is_ok),
                "200 with rejections: {text:?}"
            );
            assert!(
                written <= verdicts.len(),
                "{written} lines for {} messages",
                verdicts.len()
            );
        }
        400 if answer.get("rejected").is_some() => {
            let verdicts = expected
                .unwrap_or_else(|| panic!("rejections for a body the reference refuses: {text:?}"));
            assert_eq!(answer["success"], false);
            let accepted = verdicts.iter().filter(|v| v.is_ok()).count();
            assert_eq!(
                answer["accepted"], accepted,
                "body: {text:?}, answer: {answer}"
            );
            let rejected: Vec<(usize, String, String, String)> = verdicts
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.as_ref()
                        .err()
                        .map(|(f, r, m)| (i, f.clone(), r.clone(), m.clone()))
                })
                .collect();
            let got: Vec<(usize, String, String, String)> = answer["rejected"]
                .as_array()
                .expect("a rejected list")
                .iter()
                .map(|r| {
                    (
                        r["index"].as_u64().unwrap() as usize,
                        r["field"].as_str().unwrap().to_owned(),
                        r["rule"].as_str().unwrap().to_owned(),
                        r["message"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(got, rejected, "body: {text:?}");
            assert!(
                written <= accepted,
                "{written} lines for {accepted} accepted"
            );
        }
        401 => {
            assert!(!key_in_query, "401 with ?writeKey=dev: {answer}");
            assert_eq!(code, "unauthorized", "{answer}");
            // Only a body the reference could read, whose own writeKey is not `dev`.
            let body_key = text
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .and_then(|v| v.get("writeKey").cloned());
            assert_ne!(
                body_key,
                Some(Value::String("dev".into())),
                "body: {text:?}"
            );
            assert_eq!(written, 0);
        }
        400 | 413 | 415 => {
            assert!(!code.is_empty(), "an error code: {answer}");
            if status == 400 {
                // A body-level refusal: the reference refuses the body too.
                assert!(
                    expected.is_none(),
                    "{answer} for a body the reference accepts: {text:?}"
                );
            }
            assert_eq!(written, 0, "lines written for a refused body");
        }
        other => panic!("unexpected status {other}: {answer}"),
    }
});
