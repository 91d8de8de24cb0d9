//! Browser side (wasm32 only): thin modules that connect the pure core to the page.
//!
//! Everything here degrades quietly: a failing browser API (blocked storage, a replaced `fetch`,
//! a throwing getter) is treated as "unavailable", never surfaced to the page.

pub mod autocapture;
pub mod context;
pub mod lifecycle;
pub mod random;
#[cfg(not(feature = "std"))]
mod runtime;
pub mod storage;
pub mod tracker;
pub mod transport;

use wasm_bindgen::JsValue;

/// Milliseconds since the epoch (wall clock, as the page sees it; tests may fake it).
pub fn now_ms() -> u64 {
    let t = js_sys::Date::now();
    if t > 0.0 {
        t as u64
    } else {
        0
    }
}

/// `obj[key]`, or `undefined` when `obj` is not an object or the getter throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    // Reflect.get on a primitive throws, and building that exception costs microseconds: the
    // common `track(name, props)` call has no options object.
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `obj[key]` as a string, or empty.
pub fn get_str(obj: &JsValue, key: &str) -> alloc::string::String {
    get(obj, key).as_string().unwrap_or_default()
}
