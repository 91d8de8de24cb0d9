//! Autocapture: SPA pageviews (history patch + popstate) and clicks.
//!
//! Pageviews: `history.pushState`/`replaceState` are wrapped so that, after the page's own call,
//! a change of path or query is one pageview (a same-URL push/replace or a fragment change is
//! none); `popstate` is handled the same way; bfcache restores are in `lifecycle`.
//!
//! Clicks: one capturing listener on the document. The clicked element's closest `a`, `button`,
//! `[role=button]`, `input[type=submit|button]` or `[data-footfall-event]` is captured unless it
//! sits inside `.footfall-no-capture`. `data-footfall-event="Name"` sends `Name` with the
//! `data-footfall-prop-*` attributes as properties; the others send `$click` with tag, id,
//! classes, text (trimmed, ≤ 255 chars), href, a short selector and page coordinates.
//! The value of an input, select or textarea is never read (inputs get no `text` at all).

use crate::browser::tracker::Sdk;
use crate::browser::{get, get_str};
use crate::core::event::Kind;
use crate::core::json;
use alloc::rc::Rc;
use alloc::string::String;
use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{Element, MouseEvent};

const CAPTURED: &str =
    "a,button,[role=button],input[type=submit],input[type=button],[data-footfall-event]";
const PROP_PREFIX: &str = "data-footfall-prop-";
const MAX_TEXT_CHARS: usize = 255;

/// Wraps `history.pushState`/`replaceState` (the `popstate` and click listeners are registered
/// by `lifecycle::install`, which serves every page event with one closure).
pub fn install(sdk: &Rc<Sdk>) {
    if sdk.cfg.pageviews {
        patch_history(sdk);
    }
}

fn patch_history(sdk: &Rc<Sdk>) {
    let history = get(&sdk.win, "history");
    for name in ["pushState", "replaceState"] {
        let Ok(original) = get(&history, name).dyn_into::<Function>() else {
            continue;
        };
        let s = sdk.clone();
        let h = history.clone();
        let wrapper =
            Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
                move |state: JsValue, unused: JsValue, url: JsValue| {
                    // The page's own call first; its exception (e.g. a cross-origin URL) is the page's.
                    let args = if url.is_undefined() {
                        Array::of2(&state, &unused)
                    } else {
                        Array::of3(&state, &unused, &url)
                    };
                    let r = Reflect::apply(&original, &h, &args)?;
                    s.on_navigation(false);
                    Ok(r)
                },
            );
        let _ = Reflect::set(&history, &JsValue::from_str(name), wrapper.as_ref());
        wrapper.forget();
    }
}

pub fn on_click(sdk: &Sdk, e: &web_sys::Event) {
    let Some(target) = e.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
        return;
    };
    let Ok(Some(el)) = target.closest(CAPTURED) else {
        return;
    };
    if !matches!(el.closest(".footfall-no-capture"), Ok(None)) {
        return;
    }
    let mut props = String::from("{");
    let name = el
        .get_attribute("data-footfall-event")
        .filter(|n| !n.is_empty());
    if name.is_some() {
        for attr in el.get_attribute_names().iter() {
            let Some(a) = attr.as_string() else { continue };
            let Some(key) = a.strip_prefix(PROP_PREFIX) else {
                continue;
            };
            if props.len() > 1 {
                props.push(',');
            }
            json::push_str(&mut props, key);
            props.push(':');
            json::push_str(&mut props, &el.get_attribute(&a).unwrap_or_default());
        }
    } else {
        let tag = el.tag_name().to_ascii_lowercase();
        let field = |p: &mut String, k: &str, v: &str| {
            if p.len() > 1 {
                p.push(',');
            }
            json::push_key(p, k);
            json::push_str(p, v);
        };
        field(&mut props, "tag", &tag);
        field(&mut props, "id", &el.id());
        field(
            &mut props,
            "classes",
            &el.get_attribute("class").unwrap_or_default(),
        );
        let text = if tag == "input" {
            String::new()
        } else {
            el.text_content().unwrap_or_default()
        };
        field(&mut props, "text", clip(text.trim(), MAX_TEXT_CHARS));
        // `a.href` is the resolved URL; SVG links have an object there, so fall back to the attribute.
        let href = get(&el, "href")
            .as_string()
            .or_else(|| el.get_attribute("href"))
            .unwrap_or_default();
        field(&mut props, "href", &href);
        field(&mut props, "selector", &selector(&el));
        let (x, y) = e
            .dyn_ref::<MouseEvent>()
            .map(|m| (m.page_x(), m.page_y()))
            .unwrap_or((0, 0));
        props.push_str(",\"x\":");
        json::push_i64(&mut props, x as i64);
        props.push_str(",\"y\":");
        json::push_i64(&mut props, y as i64);
    }
    props.push('}');
    sdk.track_internal(name.as_deref().unwrap_or("$click"), &props);
}

/// The first `max` chars of `s`.
fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// A short CSS path: up to 4 levels of `tag.class`, stopping at the nearest `#id`.
fn selector(el: &Element) -> String {
    let mut parts: alloc::vec::Vec<String> = alloc::vec::Vec::new();
    let mut cur = Some(el.clone());
    while let Some(e) = cur {
        let id = e.id();
        if !id.is_empty() && css_ident(&id) {
            let mut p = String::from("#");
            p.push_str(&id);
            parts.push(p);
            break;
        }
        let mut p = e.tag_name().to_ascii_lowercase();
        for c in get_str(&e, "className")
            .split_ascii_whitespace()
            .filter(|c| css_ident(c))
            .take(2)
        {
            p.push('.');
            p.push_str(c);
        }
        parts.push(p);
        if parts.len() >= 4 {
            break;
        }
        cur = e.parent_element();
    }
    let mut out = String::new();
    for (i, p) in parts.iter().rev().enumerate() {
        if i > 0 {
            out.push_str(" > ");
        }
        out.push_str(p);
    }
    String::from(clip(&out, 255))
}

/// Safe to use unescaped in a selector.
fn css_ident(s: &str) -> bool {
    let first = s.bytes().next().unwrap_or(b'0');
    !first.is_ascii_digit()
        && first != b'-'
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

impl Sdk {
    /// A `track` from autocapture (properties already serialized).
    pub fn track_internal(&self, event: &str, props: &str) {
        self.enqueue(
            Kind::Track,
            event,
            props,
            &crate::browser::tracker::Call::default(),
        );
    }
}
