//! Page lifecycle: hand the queue to beacons and persist when the page is hidden or unloaded,
//! and resume when it comes back (bfcache restore, visible again, back online).

use crate::browser::tracker::Sdk;
use crate::browser::{get, get_str, transport};
use alloc::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::EventTarget;

pub fn install(sdk: &Rc<Sdk>) {
    let win: &EventTarget = sdk.win.as_ref();
    let doc: EventTarget = get(&sdk.win, "document").unchecked_into();
    let s = sdk.clone();
    listen(&doc, "visibilitychange", move |_| {
        let hidden = get_str(&get(&s.win, "document"), "visibilityState") == "hidden";
        if hidden {
            hide(&s);
        } else {
            show(&s);
        }
    });
    let s = sdk.clone();
    listen(win, "pagehide", move |_| hide(&s));
    let s = sdk.clone();
    listen(win, "pageshow", move |e: web_sys::Event| {
        if get(&e, "persisted").is_truthy() {
            show(&s);
            // Restored from the back-forward cache: that is a new pageview of this page.
            s.on_navigation(true);
        }
    });
    let s = sdk.clone();
    listen(win, "online", move |_| {
        if let Ok(mut g) = s.inner.try_borrow_mut() {
            transport::maybe_send(&s, &mut g, true, true);
        }
    });
}

/// Adds a listener for the page's lifetime (passive; never removed).
pub fn listen(target: &EventTarget, name: &str, f: impl FnMut(web_sys::Event) + 'static) {
    let cb = Closure::<dyn FnMut(web_sys::Event)>::new(f);
    let _ = target.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
    cb.forget();
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
