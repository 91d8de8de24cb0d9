//! What we read about the page and the browser for `context`.
//!
//! The page context is read once per load and once per navigation (our history patch, popstate,
//! bfcache restore) and kept as ready-made JSON, so a `track()` call reads nothing from the DOM.
//! The common context (user agent, locale, time zone, screen) is read once at start.

use crate::browser::{get, get_str};
use crate::core::{campaign, event};
use alloc::string::String;
use wasm_bindgen::JsValue;
use web_sys::Window;

/// The current page as the messages describe it.
#[derive(Default)]
pub struct Page {
    /// `context.page` JSON.
    pub json: String,
    /// `context.campaign` JSON, or empty.
    pub campaign_json: String,
    pub campaign_key: u32,
    /// `pathname + search`: what decides whether a navigation is a new pageview.
    pub route: String,
    pub href: String,
}

pub fn page(win: &Window) -> Page {
    let loc = get(win, "location");
    let doc = get(win, "document");
    let path = get_str(&loc, "pathname");
    let search = get_str(&loc, "search");
    let href = get_str(&loc, "href");
    let c = campaign::parse(&search);
    let json = event::page_context(
        &path,
        &get_str(&doc, "referrer"),
        &search,
        &get_str(&doc, "title"),
        &href,
    );
    let mut route = path;
    route.push_str(&search);
    Page {
        json,
        campaign_json: c.json,
        campaign_key: c.key,
        route,
        href,
    }
}

/// The batch-level context, serialized.
pub fn common(win: &Window) -> String {
    let nav = get(win, "navigator");
    let screen = get(win, "screen");
    let int = |v: JsValue| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
            .unwrap_or(0)
    };
    let density = get(win, "devicePixelRatio");
    // The browser prints the number: no float formatting code in the wasm.
    let density = match density.as_f64() {
        Some(_) => String::from(
            js_sys::Number::from(density)
                .to_string_with_radix(10)
                .unwrap_or_else(|_| "1".into()),
        ),
        None => String::from("1"),
    };
    let tz = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    event::common_context(&event::Common {
        user_agent: &get_str(&nav, "userAgent"),
        locale: &get_str(&nav, "language"),
        timezone: &get_str(&tz, "timeZone"),
        screen_width: int(get(&screen, "width")),
        screen_height: int(get(&screen, "height")),
        density: &density,
    })
}

/// Do Not Track or Global Privacy Control is on.
pub fn privacy_signal(win: &Window) -> bool {
    let nav = get(win, "navigator");
    let dnt = |v: JsValue| v.as_string().is_some_and(|s| s == "1" || s == "yes");
    dnt(get(&nav, "doNotTrack"))
        || dnt(get(win, "doNotTrack"))
        || get(&nav, "globalPrivacyControl").is_truthy()
}
