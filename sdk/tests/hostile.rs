//! Browser tests on a hostile page (its own test binary, so its own page): storage that throws
//! on every access and cookies that throw. The JS storage edge must never throw and must degrade
//! localStorage → cookie → memory; the page context reads must survive throwing getters.
#![cfg(target_arch = "wasm32")]

use footfall_sdk::core::persist;
use footfall_sdk::core::session::State;
use js_sys::{Function, Object, Reflect};
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
    #[wasm_bindgen(method)]
    fn read(this: &Store) -> Option<String>;
    #[wasm_bindgen(method, js_name = writeState)]
    fn write_state(this: &Store, raw: &str) -> bool;
    #[wasm_bindgen(method, js_name = writeQueue)]
    fn write_queue(this: &Store, raw: &str) -> bool;
    #[wasm_bindgen(method)]
    fn queues(this: &Store) -> js_sys::Array;
}

// context.js imports ./json.js: binding it here also puts it next to context.js among the
// test's JS snippets, where that import finds it.
#[wasm_bindgen(module = "/js/json.js")]
extern "C" {
    fn clip(s: &str, max: u32) -> String;
    fn json(v: &JsValue) -> String;
}

#[wasm_bindgen(module = "/js/context.js")]
extern "C" {
    fn page() -> js_sys::Array;
    #[wasm_bindgen(js_name = privacySignal)]
    fn privacy_signal() -> bool;
}

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

fn state() -> String {
    persist::write_state(&State {
        anonymous_id: "0a1b2c3d-0000-4000-8000-000000000001".into(),
        session_id: "018bcfe5-6800-7000-8000-000000000002".into(),
        ..State::default()
    })
}

/// One test, in order: each step makes the page more hostile.
#[wasm_bindgen_test]
fn storage_degrades_and_nothing_throws() {
    let w = win();
    // 1. localStorage and sessionStorage throw on access: the state falls back to a cookie.
    make_throwing(&w, "localStorage");
    make_throwing(&w, "sessionStorage");
    let s = open_store("localStorage", "", "h1", false);
    assert_eq!(s.mode(), "cookie");
    assert!(s.write_state(&state()));
    assert_eq!(s.read().as_deref(), Some(state().as_str()));
    // The queue has nowhere to go (never a cookie): nothing written, nothing listed, no throw.
    assert!(s.write_queue("ffq1 1 0\n{}"));
    assert_eq!(s.queues().length(), 0);
    assert!(!tab_id().is_empty(), "a tab id even without sessionStorage");

    // 2. Cookies throw too: memory only, still no exception.
    let doc = Reflect::get(&w, &"document".into()).unwrap();
    // Document.prototype (the `cookie` accessor lives there).
    let doc_proto = Object::get_prototype_of(&Object::get_prototype_of(&doc).into());
    make_throwing(&doc_proto.into(), "cookie");
    let s = open_store("localStorage", "", "h2", false);
    assert_eq!(s.mode(), "memory");
    assert!(s.write_state(&state()));
    assert_eq!(s.read(), None);
    // A store opened on cookies that start throwing later falls back to memory on write.
    let s = open_store("cookie", "", "h3", false);
    assert_eq!(s.mode(), "memory");

    // 3. Throwing page getters: the context reads give empty strings, never an exception.
    let loc = Reflect::get(&w, &"navigator".into()).unwrap();
    let nav_proto = Object::get_prototype_of(&loc);
    make_throwing(&nav_proto.into(), "doNotTrack");
    make_throwing(&doc_proto_title(&doc), "title");
    assert!(!privacy_signal());
    let p = page();
    // [context.page JSON, route, context.campaign JSON]
    assert_eq!(p.length(), 3);
    let ctx = js_sys::JSON::parse(&p.get(0).as_string().unwrap()).unwrap();
    assert_eq!(
        Reflect::get(&ctx, &"title".into())
            .unwrap()
            .as_string()
            .unwrap(),
        ""
    );
}

#[wasm_bindgen_test]
fn wire_json_is_always_text_the_ingest_accepts() {
    // Code points, not UTF-16 units: a clipped value never ends in half a surrogate pair.
    assert_eq!(clip("a😀b", 2), "a😀");
    assert_eq!(clip("short", 200), "short");
    // A lone surrogate (which JSON.stringify escapes as \udXXX, refused by the ingest) becomes
    // U+FFFD; a cycle becomes "[Circular]" instead of an exception.
    let lone = js_sys::JSON::parse(r#"{"t":"x\ud800y"}"#).unwrap();
    assert_eq!(json(&lone), r#"{"t":"x\ufffdy"}"#);
    let cyc = Object::new();
    Reflect::set(&cyc, &"me".into(), &cyc).unwrap();
    assert_eq!(json(&cyc), r#"{"me":"[Circular]"}"#);
}

fn doc_proto_title(doc: &JsValue) -> JsValue {
    // Document.prototype holds the `title` accessor.
    Object::get_prototype_of(&Object::get_prototype_of(doc).into()).into()
}
