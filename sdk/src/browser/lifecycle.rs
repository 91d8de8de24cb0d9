//! Page lifecycle: hand the queue to beacons and persist when the page is hidden or unloaded,
//! and resume when it comes back (bfcache restore, visible again, back online).

use crate::browser::tracker::Sdk;
use crate::browser::{autocapture, get, get_str, transport};
use alloc::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::EventTarget;

/// Registers the SDK's page listeners: lifecycle ones always, `popstate` and clicks per the
/// autocapture options. One closure serves them all (dispatching on `event.type`): every
/// closure costs an invoke shim in the wasm and a wrapper in the JS glue.
pub fn install(sdk: &Rc<Sdk>) {
    let win: &EventTarget = sdk.win.as_ref();
    let doc: EventTarget = get(&sdk.win, "document").unchecked_into();
    let s = sdk.clone();
    let cb = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| on_event(&s, &e));
    let f: &js_sys::Function = cb.as_ref().unchecked_ref();
    let _ = doc.add_event_listener_with_callback("visibilitychange", f);
    for name in ["pagehide", "pageshow", "online"] {
        let _ = win.add_event_listener_with_callback(name, f);
    }
    if sdk.cfg.pageviews {
        let _ = win.add_event_listener_with_callback("popstate", f);
    }
    if sdk.cfg.clicks {
        // Capture phase: a page that stops propagation does not hide its clicks from us.
        let _ = doc.add_event_listener_with_callback_and_bool("click", f, true);
    }
    cb.forget();
}

fn on_event(s: &Sdk, e: &web_sys::Event) {
    match e.type_().as_str() {
        "click" => autocapture::on_click(s, e),
        "popstate" => s.on_navigation(false),
        "visibilitychange" => {
            if get_str(&get(&s.win, "document"), "visibilityState") == "hidden" {
                hide(s);
            } else {
                show(s);
            }
        }
        "pagehide" => hide(s),
        // Restored from the back-forward cache: that is a new pageview of this page.
        "pageshow" if get(e, "persisted").is_truthy() => {
            show(s);
            s.on_navigation(true);
        }
        "online" => {
            if let Ok(mut g) = s.inner.try_borrow_mut() {
                transport::maybe_send(s, &mut g, true, true);
            }
        }
        _ => {}
    }
}

fn hide(sdk: &Sdk) {
    let Ok(mut g) = sdk.inner.try_borrow_mut() else {
        return;
    };
    transport::beacon_all(sdk, &mut g);
    g.hidden = true;
    g.state_dirty = true;
    g.queue_dirty = true;
    sdk.persist(&mut g, true);
}

fn show(sdk: &Sdk) {
    let Ok(mut g) = sdk.inner.try_borrow_mut() else {
        return;
    };
    if g.hidden {
        g.hidden = false;
        g.queue_dirty = true;
        sdk.schedule_task_end(&mut g);
    }
}
