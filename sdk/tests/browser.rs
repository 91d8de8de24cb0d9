//! Browser tests of the wasm-only modules (headless Chromium via `wasm-pack test --headless
//! --chrome`): storage round trips and fallbacks, cookie attributes, the random pool, and the
//! tracker's timers and argument errors. All tests of this file share one page, so none of them
//! breaks the page's storage (that is `hostile.rs`'s job, in its own page).
#![cfg(target_arch = "wasm32")]

use footfall_sdk::browser::random::Pool;
use footfall_sdk::browser::storage::{Persistence, Store, STATE_KEY};
use footfall_sdk::browser::tracker::Tracker;
use footfall_sdk::core::persist::QueueHeader;
use footfall_sdk::core::session::State;
use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

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

fn document_cookie() -> String {
    Reflect::get(
        &Reflect::get(&win(), &"document".into()).unwrap(),
        &"cookie".into(),
    )
    .unwrap()
    .as_string()
    .unwrap()
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        win()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
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
    let w = win();
    let mut s = Store::open(&w, Persistence::LocalStorage, "", false, "t1");
    assert_eq!(s.state_in, Persistence::LocalStorage);
    assert!(s.write_state(&state("u|1")));
    assert_eq!(s.read_state(), Some(state("u|1")));
    // Another tab's write is what the next read sees (reads are fresh).
    let ls = w.local_storage().unwrap().unwrap();
    ls.set_item(
        STATE_KEY,
        &footfall_sdk::core::persist::write_state(&state("other")),
    )
    .unwrap();
    assert_eq!(s.read_state().unwrap().user_id, "other");
    // Corrupt data under our key reads as nothing (the caller starts fresh), never a throw.
    ls.set_item(STATE_KEY, "{\"not\":\"ours\"}").unwrap();
    assert_eq!(s.read_state(), None);
    ls.remove_item(STATE_KEY).unwrap();
}

#[wasm_bindgen_test]
fn cookie_persistence_and_attributes() {
    let w = win();
    let mut s = Store::open(&w, Persistence::Cookie, "", false, "t2");
    assert_eq!(s.state_in, Persistence::Cookie);
    assert_eq!(
        s.cookie_attributes(),
        "; Max-Age=31536000; Path=/; SameSite=Lax"
    );
    assert!(s.write_state(&state("user; with=odd chars ☃")));
    assert!(
        document_cookie().contains("ff_id="),
        "{}",
        document_cookie()
    );
    assert!(
        !document_cookie().contains("ff_probe"),
        "the probe cookie is removed"
    );
    assert_eq!(s.read_state().unwrap().user_id, "user; with=odd chars ☃");
    // The cookie never grows: a huge user id is not stored.
    assert!(s.write_state(&state(&"x".repeat(10_000))));
    assert!(document_cookie().len() < 400, "{}", document_cookie().len());
    // Secure on https and a shared domain are attributes of the same line.
    let secure = Store::open(&w, Persistence::Cookie, ".example.com", true, "t3");
    assert_eq!(
        secure.cookie_attributes(),
        "; Max-Age=31536000; Path=/; SameSite=Lax; Secure; Domain=.example.com"
    );
    // Clean up for the other tests.
    Reflect::set(
        &Reflect::get(&w, &"document".into()).unwrap(),
        &"cookie".into(),
        &"ff_id=; Max-Age=0; Path=/".into(),
    )
    .unwrap();
}

#[wasm_bindgen_test]
fn memory_persistence_stores_nothing() {
    let w = win();
    let before = w.local_storage().unwrap().unwrap().length().unwrap();
    let mut s = Store::open(&w, Persistence::Memory, "", false, "t4");
    assert_eq!(s.state_in, Persistence::Memory);
    assert!(s.write_state(&state("m")));
    assert_eq!(s.read_state(), None);
    assert!(s.write_queue(
        QueueHeader {
            updated: 1,
            closed: false
        },
        &["{\"a\":1}"],
        7
    ));
    assert_eq!(
        w.local_storage().unwrap().unwrap().length().unwrap(),
        before
    );
}

#[wasm_bindgen_test]
fn queues_of_closed_tabs_are_adopted_live_ones_are_not() {
    let w = win();
    let ls = w.local_storage().unwrap().unwrap();
    let now = js_sys::Date::now() as u64;
    ls.set_item(
        "ff_q.closed1",
        &format!("ffq1 {} 1\n{{\"m\":\"closed\"}}", now - 1_000),
    )
    .unwrap();
    ls.set_item("ff_q.live1", &format!("ffq1 {now} 0\n{{\"m\":\"live\"}}"))
        .unwrap();
    ls.set_item(
        "ff_q.stale1",
        &format!("ffq1 {} 0\n{{\"m\":\"stale\"}}", now - 600_000),
    )
    .unwrap();
    ls.set_item("ff_q.junk1", "not a queue").unwrap();
    let mut s = Store::open(&w, Persistence::LocalStorage, "", false, "mine1");
    assert!(s.write_queue(
        QueueHeader {
            updated: now,
            closed: true
        },
        &["{\"m\":\"mine\"}"],
        12
    ));
    let got = s.take_queues(now, 100);
    assert_eq!(
        got,
        [
            "{\"m\":\"stale\"}",
            "{\"m\":\"closed\"}",
            "{\"m\":\"mine\"}"
        ]
    );
    assert!(
        ls.get_item("ff_q.live1").unwrap().is_some(),
        "a live tab keeps its queue"
    );
    assert!(
        ls.get_item("ff_q.junk1").unwrap().is_none(),
        "foreign data under our prefix is dropped"
    );
    assert!(ls.get_item("ff_q.closed1").unwrap().is_none());
    ls.remove_item("ff_q.live1").unwrap();
}

#[wasm_bindgen_test]
fn random_pool_refills_and_falls_back() {
    let mut p = Pool::new(win().crypto().ok());
    let mut seen = std::collections::HashSet::new();
    // 2,000 × 16 bytes crosses the 4 KB pool several times.
    for _ in 0..2_000 {
        assert!(seen.insert(p.bytes::<16>()), "16 random bytes repeated");
    }
    let mut fallback = Pool::new(None);
    let a = fallback.bytes::<16>();
    let b = fallback.bytes::<16>();
    assert_ne!(a, b);
    assert_ne!(a, [0; 16]);
}

#[wasm_bindgen_test]
fn wrong_arguments_throw_type_errors_naming_them() {
    let no_key = Tracker::new(opts(&[("autocapture", JsValue::FALSE)]))
        .err()
        .unwrap();
    assert!(no_key.is_instance_of::<js_sys::TypeError>());
    let msg = |e: &JsValue| {
        Reflect::get(e, &"message".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    assert!(msg(&no_key).contains("writeKey"));
    let unknown = Tracker::new(opts(&[("writeKey", "k".into()), ("flushEvery", 1.into())]))
        .err()
        .unwrap();
    assert!(msg(&unknown).contains("flushEvery"));
    let bad_type = Tracker::new(opts(&[("writeKey", "k".into()), ("flushAt", "20".into())]))
        .err()
        .unwrap();
    assert!(msg(&bad_type).contains("flushAt"));
}

#[wasm_bindgen_test]
async fn flush_interval_timer_sends_and_a_throwing_fetch_is_contained() {
    // A page whose fetch throws: the SDK must count the attempt as a network error, not throw.
    let calls = js_sys::Array::new();
    let calls2 = calls.clone();
    let throwing = Closure::<dyn FnMut(JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
        move |url: JsValue, init: JsValue| {
            calls2.push(&js_sys::Array::of2(
                &url,
                &Reflect::get(&init, &"body".into()).unwrap_or_default(),
            ));
            Err(js_sys::Error::new("fetch blocked by the page").into())
        },
    );
    let w = win();
    let original = Reflect::get(&w, &"fetch".into()).unwrap();
    Reflect::set(&w, &"fetch".into(), throwing.as_ref()).unwrap();
    let t = Tracker::new(opts(&[
        ("writeKey", "k".into()),
        ("apiHost", "http://127.0.0.1:9".into()),
        ("autocapture", JsValue::FALSE),
        ("flushIntervalMs", 50.into()),
        ("persistence", "memory".into()),
    ]))
    .unwrap();
    t.event(0, "Timer", "{}", f64::NAN, "", 0);
    assert_eq!(calls.length(), 0, "below flushAt nothing is sent at once");
    sleep(300).await;
    Reflect::set(&w, &"fetch".into(), &original).unwrap();
    assert!(
        calls.length() >= 1,
        "the flush interval timer sent the batch"
    );
    let first = js_sys::Array::from(&calls.get(0));
    assert_eq!(
        first.get(0).as_string().unwrap(),
        "http://127.0.0.1:9/v1/batch"
    );
    let body = first.get(1).as_string().unwrap();
    assert!(
        body.starts_with("{\"batch\":[{\"type\":\"track\""),
        "{body}"
    );
    assert!(
        body.contains("\"event\":\"Timer\"") && body.contains("\"writeKey\":\"k\""),
        "{body}"
    );
}
