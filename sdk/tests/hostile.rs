//! Browser tests on a hostile page (its own test binary, so its own page): storage that throws
//! on every access, cookies that throw, and properties JSON.stringify cannot serialize. Nothing
//! may reach the page as an exception; storage degrades localStorage → cookie → memory.
#![cfg(target_arch = "wasm32")]

use footfall_sdk::browser::storage::{Persistence, Store};
use footfall_sdk::browser::tracker::Tracker;
use footfall_sdk::core::session::State;
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn win() -> web_sys::Window {
    js_sys::global().unchecked_into()
}

/// `Object.defineProperty(target, key, { get/set: () => { throw … } })`.
fn make_throwing(target: &JsValue, key: &str) {
    let thrower: Function = Closure::<dyn FnMut() -> Result<JsValue, JsValue>>::new(|| {
        Err(js_sys::Error::new("SecurityError: blocked by the page").into())
    })
    .into_js_value()
    .unchecked_into();
    let desc = Object::new();
    Reflect::set(&desc, &"configurable".into(), &JsValue::TRUE).unwrap();
    Reflect::set(&desc, &"get".into(), &thrower).unwrap();
    Reflect::set(&desc, &"set".into(), &thrower).unwrap();
    Object::define_property(target.unchecked_ref::<Object>(), &key.into(), &desc);
}

fn state() -> State {
    State {
        anonymous_id: "0a1b2c3d-0000-4000-8000-000000000001".into(),
        session_id: "018bcfe5-6800-7000-8000-000000000002".into(),
        ..State::default()
    }
}

fn opts() -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"writeKey".into(), &"k".into()).unwrap();
    Reflect::set(&o, &"apiHost".into(), &"http://127.0.0.1:9".into()).unwrap();
    Reflect::set(&o, &"autocapture".into(), &JsValue::FALSE).unwrap();
    Reflect::set(&o, &"flushIntervalMs".into(), &600_000.into()).unwrap();
    o.into()
}

/// One test, in order: each step makes the page more hostile.
#[wasm_bindgen_test]
fn storage_degrades_and_nothing_throws() {
    let w = win();
    // 1. localStorage and sessionStorage throw on access: the state falls back to a cookie.
    make_throwing(&w, "localStorage");
    make_throwing(&w, "sessionStorage");
    let mut s = Store::open(&w, Persistence::LocalStorage, "", false, "h1");
    assert_eq!(s.state_in, Persistence::Cookie);
    assert!(s.write_state(&state()));
    assert_eq!(s.read_state(), Some(state()));
    let t = Tracker::new(opts()).expect("init works without localStorage");
    assert!(!t.anonymous_id().is_empty());

    // 2. Cookies throw too: memory only, still no exception.
    let doc = Reflect::get(&w, &"document".into()).unwrap();
    // Document.prototype (the `cookie` accessor lives there).
    let doc_proto = Object::get_prototype_of(&Object::get_prototype_of(&doc).into());
    make_throwing(&doc_proto.into(), "cookie");
    let mut s = Store::open(&w, Persistence::LocalStorage, "", false, "h2");
    assert_eq!(s.state_in, Persistence::Memory);
    assert!(s.write_state(&state()));
    assert_eq!(s.read_state(), None);
    let t = Tracker::new(opts()).expect("init works with no storage at all");

    // 3. (Cycles, BigInt and throwing getters are the adapter's: sdk/js/index.js serializes.)
    // A 1 MB string: the message is dropped (over the 32 KB ingest limit), not thrown.
    let huge = format!("{{\"s\":\"{}\"}}", "x".repeat(1 << 20));
    t.event(0, "Huge", &huge, f64::NAN, "", 0);
    // Junk where JSON is expected is replaced, not sent as is.
    t.event(0, "Junk", "not json", f64::NAN, "{broken", 1);
    t.event(2, "u", "{}", f64::NAN, "", 0);
    assert_eq!(t.user_id().as_deref(), Some("u"));
}
