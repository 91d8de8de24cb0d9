//! Browser tests of the JS edges (headless Chromium via `wasm-pack test --headless --chrome`):
//! storage round trips and fallbacks, cookie attributes, the stored-queue listing, the random
//! fill, the timestamps, the string writer of the wasm edge, option TypeErrors and a throwing `fetch`/`sendBeacon`. The edges are the real files of
//! sdk/js, imported as ES modules; the stored formats are the core's (`core::persist`). All tests
//! of this file share one page, so none of them breaks the page's storage (that is
//! `hostile.rs`'s job, in its own page).
#![cfg(target_arch = "wasm32")]

use footfall_sdk::core::persist;
use footfall_sdk::core::session::State;
use footfall_sdk::core::time;
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/js/storage.js")]
extern "C" {
    type Store;
    #[wasm_bindgen(js_name = openStore)]
    fn open_store(persistence: &str, cookie_domain: &str, tab: &str, secure: bool) -> Store;
    #[wasm_bindgen(js_name = tabId)]
    fn tab_id() -> String;
    #[wasm_bindgen(method, getter)]
    fn mode(this: &Store) -> String;
    #[wasm_bindgen(method, getter)]
    fn attrs(this: &Store) -> String;
    #[wasm_bindgen(method, getter, js_name = queueKey)]
    fn queue_key(this: &Store) -> String;
    #[wasm_bindgen(method)]
    fn read(this: &Store) -> Option<String>;
    #[wasm_bindgen(method, js_name = writeState)]
    fn write_state(this: &Store, raw: &str) -> bool;
    #[wasm_bindgen(method, js_name = writeQueue)]
    fn write_queue(this: &Store, raw: &str) -> bool;
    #[wasm_bindgen(method)]
    fn queues(this: &Store) -> js_sys::Array;
    #[wasm_bindgen(method)]
    fn remove(this: &Store, key: &str);
    #[wasm_bindgen(method, js_name = newKey)]
    fn new_key(this: &Store);
}

#[wasm_bindgen(module = "/js/options.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn parse(o: &JsValue) -> Result<JsValue, JsValue>;
}

#[wasm_bindgen(module = "/js/wasm.js")]
extern "C" {
    #[wasm_bindgen(js_name = fillRandom)]
    fn fill_random(a: &js_sys::Uint8Array);
    fn iso(ms: f64) -> String;
    fn write(b: &js_sys::Uint8Array, o: u32, s: &str) -> u32;
}

#[wasm_bindgen(module = "/js/transport.js")]
extern "C" {
    fn post(url: &str, body: &str, keepalive: bool, done: &js_sys::Function) -> bool;
    fn beacon(url: &str, body: &str) -> bool;
}

const ANON: &str = "0a1b2c3d-0000-4000-8000-000000000001";

fn win() -> web_sys::Window {
    js_sys::global().unchecked_into()
}

fn state(user: &str) -> State {
    State {
        anonymous_id: ANON.into(),
        user_id: user.into(),
        session_id: "018bcfe5-6800-7000-8000-000000000002".into(),
        session_start: 1,
        last_activity: 2,
        campaign: 3,
        opt_out: false,
    }
}

fn document() -> JsValue {
    Reflect::get(&win(), &"document".into()).unwrap()
}

fn document_cookie() -> String {
    Reflect::get(&document(), &"cookie".into())
        .unwrap()
        .as_string()
        .unwrap()
}

fn read_state(s: &Store) -> Option<State> {
    persist::read_state(&s.read()?)
}

fn opts(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

#[wasm_bindgen_test]
fn local_storage_round_trip() {
    let s = open_store("localStorage", "", "t1", false);
    assert_eq!(s.mode(), "localStorage");
    assert!(s.write_state(&persist::write_state(&state("u|1"))));
    assert_eq!(read_state(&s), Some(state("u|1")));
    // Another tab's write is what the next read sees (reads are fresh).
    let ls = win().local_storage().unwrap().unwrap();
    ls.set_item("ff_id", &persist::write_state(&state("other")))
        .unwrap();
    assert_eq!(read_state(&s).unwrap().user_id, "other");
    // Corrupt data under our key reads as nothing (the core starts fresh), never a throw.
    ls.set_item("ff_id", "{\"not\":\"ours\"}").unwrap();
    assert_eq!(read_state(&s), None);
    ls.remove_item("ff_id").unwrap();
    assert!(
        ls.get_item("ff_probe").unwrap().is_none(),
        "the probe is removed"
    );
}

#[wasm_bindgen_test]
fn cookie_persistence_and_attributes() {
    let s = open_store("cookie", "", "t2", false);
    assert_eq!(s.mode(), "cookie");
    assert_eq!(s.attrs(), "; Max-Age=31536000; Path=/; SameSite=Lax");
    assert!(s.write_state(&persist::write_state(&state("user; with=odd chars ☃"))));
    assert!(
        document_cookie().contains("ff_id="),
        "{}",
        document_cookie()
    );
    assert!(
        !document_cookie().contains("ff_probe"),
        "the probe cookie is removed"
    );
    assert_eq!(read_state(&s).unwrap().user_id, "user; with=odd chars ☃");
    // The cookie never grows: a huge user id is not stored.
    assert!(s.write_state(&persist::write_state(&state(&"x".repeat(10_000)))));
    assert!(document_cookie().len() < 400, "{}", document_cookie().len());
    // Secure on https and a shared domain are attributes of the same line.
    let secure = open_store("cookie", ".example.com", "t3", true);
    assert_eq!(
        secure.attrs(),
        "; Max-Age=31536000; Path=/; SameSite=Lax; Secure; Domain=.example.com"
    );
    // Clean up for the other tests.
    Reflect::set(
        &document(),
        &"cookie".into(),
        &"ff_id=; Max-Age=0; Path=/".into(),
    )
    .unwrap();
}

#[wasm_bindgen_test]
fn memory_persistence_stores_nothing() {
    let ls = win().local_storage().unwrap().unwrap();
    let before = ls.length().unwrap();
    let s = open_store("memory", "", "t4", false);
    assert_eq!(s.mode(), "memory");
    assert!(s.write_state(&persist::write_state(&state("m"))));
    assert_eq!(s.read(), None);
    // Under a privacy signal the tab id is empty: no queue is stored either.
    let none = open_store("memory", "", "", false);
    assert!(none.write_queue("ffq1 1 0\n{\"a\":1}"));
    assert_eq!(ls.length().unwrap(), before);
}

#[wasm_bindgen_test]
fn stored_queues_are_listed_written_and_removed() {
    let ls = win().local_storage().unwrap().unwrap();
    ls.set_item("ff_q.other1", "ffq1 1 1\n{\"m\":\"closed\"}")
        .unwrap();
    ls.set_item("unrelated", "x").unwrap();
    let s = open_store("localStorage", "", "mine1", false);
    assert_eq!(s.queue_key(), "ff_q.mine1");
    assert!(s.write_queue("ffq1 2 0\n{\"m\":\"mine\"}"));
    let mut listed: Vec<(String, String)> = s
        .queues()
        .iter()
        .map(|kv| {
            let kv = js_sys::Array::from(&kv);
            (
                kv.get(0).as_string().unwrap(),
                kv.get(1).as_string().unwrap(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            (
                "ff_q.mine1".to_string(),
                "ffq1 2 0\n{\"m\":\"mine\"}".to_string()
            ),
            (
                "ff_q.other1".to_string(),
                "ffq1 1 1\n{\"m\":\"closed\"}".to_string()
            ),
        ]
    );
    // The wasm decides which to adopt (core::machine tests); the edge removes them.
    s.remove("ff_q.other1");
    assert!(ls.get_item("ff_q.other1").unwrap().is_none());
    // An empty queue removes our key.
    assert!(s.write_queue(""));
    assert!(ls.get_item("ff_q.mine1").unwrap().is_none());
    // A duplicated tab takes a new key.
    s.new_key();
    assert!(s.queue_key().starts_with("ff_q.") && s.queue_key() != "ff_q.mine1");
    ls.remove_item("unrelated").unwrap();
    // The tab id is kept in sessionStorage: the same across calls (a reload finds its queue).
    let t = tab_id();
    assert!(!t.is_empty() && t.len() <= 16);
    assert_eq!(tab_id(), t);
}

#[wasm_bindgen_test]
fn random_fill_uses_crypto_and_never_repeats() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2_000 {
        let a = js_sys::Uint8Array::new_with_length(16);
        fill_random(&a);
        assert!(seen.insert(a.to_vec()), "16 random bytes repeated");
    }
}

#[wasm_bindgen_test]
fn browser_timestamps_match_the_core_formatter() {
    // The release wasm takes its timestamps from this edge (Host::iso); core::time::push_iso
    // is the reference: same text for the edge cases and a spread of instants up to the clamp, and runs of consecutive ones.
    let mut cases = vec![
        0,
        1,
        86_399_999,
        951_782_400_000,
        4_107_542_400_000,
        time::MAX_MS,
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cases.push(x % (time::MAX_MS + 1));
    }
    // Runs of consecutive instants, across second, day and year boundaries: the edge formats
    // a second once and appends the milliseconds.
    for start in [1_700_000_000_990, 1_704_067_199_995, 951_868_799_998] {
        cases.extend(start..start + 20);
    }
    for ms in cases {
        let mut want = String::new();
        time::push_iso(&mut want, ms);
        assert_eq!(iso(ms as f64), want, "{ms}");
    }
}

#[wasm_bindgen_test]
fn wrong_options_throw_type_errors_naming_them() {
    let msg = |e: &JsValue| {
        assert!(e.is_instance_of::<js_sys::TypeError>());
        Reflect::get(e, &"message".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    let no_key = parse(&opts(&[("autocapture", JsValue::FALSE)])).unwrap_err();
    assert!(msg(&no_key).contains("writeKey"));
    let unknown = parse(&opts(&[("writeKey", "k".into()), ("flushEvery", 1.into())])).unwrap_err();
    assert!(msg(&unknown).contains("flushEvery"));
    let bad_type = parse(&opts(&[("writeKey", "k".into()), ("flushAt", "20".into())])).unwrap_err();
    assert!(msg(&bad_type).contains("flushAt"));
    let not_object = parse(&"k".into()).unwrap_err();
    assert!(msg(&not_object).starts_with("footfall:"));
    let ok = parse(&opts(&[
        ("writeKey", "k".into()),
        ("apiHost", "http://127.0.0.1:9//".into()),
        ("sessionTimeoutMinutes", 0.5.into()),
    ]))
    .unwrap();
    let get = |k: &str| Reflect::get(&ok, &k.into()).unwrap();
    assert_eq!(
        get("url").as_string().unwrap(),
        "http://127.0.0.1:9/v1/batch"
    );
    assert_eq!(get("idle").as_f64().unwrap(), 30_000.0);
    assert_eq!(get("flushAt").as_f64().unwrap(), 20.0);
}

#[wasm_bindgen_test]
fn a_throwing_fetch_or_beacon_is_a_network_error_not_an_exception() {
    let w = win();
    let thrower: js_sys::Function = Closure::<dyn FnMut() -> Result<JsValue, JsValue>>::new(|| {
        Err(js_sys::Error::new("blocked by the page").into())
    })
    .into_js_value()
    .unchecked_into();
    let original = Reflect::get(&w, &"fetch".into()).unwrap();
    Reflect::set(&w, &"fetch".into(), &thrower).unwrap();
    let done: js_sys::Function = Closure::<dyn FnMut()>::new(|| panic!("done must not be called"))
        .into_js_value()
        .unchecked_into();
    let started = post("http://127.0.0.1:9/v1/batch", "{}", true, &done);
    Reflect::set(&w, &"fetch".into(), &original).unwrap();
    assert!(!started, "a throwing fetch did not start a request");
    // A fetch that returns junk (not a promise) is a network error too.
    let junk: js_sys::Function = Closure::<dyn FnMut() -> JsValue>::new(|| JsValue::from(42))
        .into_js_value()
        .unchecked_into();
    Reflect::set(&w, &"fetch".into(), &junk).unwrap();
    let started = post("http://127.0.0.1:9/v1/batch", "{}", false, &done);
    Reflect::set(&w, &"fetch".into(), &original).unwrap();
    assert!(!started);
    let nav = Reflect::get(&w, &"navigator".into()).unwrap();
    let desc = Object::new();
    Reflect::set(&desc, &"configurable".into(), &JsValue::TRUE).unwrap();
    Reflect::set(&desc, &"value".into(), &thrower).unwrap();
    Object::define_property(nav.unchecked_ref::<Object>(), &"sendBeacon".into(), &desc);
    assert!(!beacon("http://127.0.0.1:9/v1/batch", "{}"));
    Reflect::delete_property(nav.unchecked_ref::<Object>(), &"sendBeacon".into()).unwrap();
}

/// The edge's string writer (js/wasm.js `write`: short ASCII strings byte by byte, the rest by
/// `TextEncoder.encodeInto`) writes exactly the UTF-8 of the string, at the offset it is given,
/// and nothing past its end.
#[wasm_bindgen_test]
fn the_string_writer_writes_exactly_the_utf8_of_the_string() {
    let long_ascii = "x".repeat(63) + "y";
    let long_then_wide = "a".repeat(70) + "é€😀";
    let cases = [
        "",
        "evt",
        "{\"i\":1234}",
        "é",
        "ascii then é",
        "€ first",
        "😀 astral",
        "a\u{0}b\u{7f}c",
        long_ascii.as_str(),
        long_then_wide.as_str(),
    ];
    for s in cases {
        let want = s.as_bytes();
        for at in [0u32, 5] {
            let b = js_sys::Uint8Array::new_with_length(at + want.len() as u32 + 8);
            b.fill(0xAB, 0, b.length());
            let end = write(&b, at, s);
            assert_eq!(end, at + want.len() as u32, "end for {s:?} at {at}");
            let got = b.to_vec();
            assert_eq!(
                &got[at as usize..end as usize],
                want,
                "bytes of {s:?} at {at}"
            );
            assert!(
                got[..at as usize].iter().all(|&x| x == 0xAB),
                "before {s:?}"
            );
            assert!(
                got[end as usize..].iter().all(|&x| x == 0xAB),
                "after {s:?}"
            );
        }
    }
}
