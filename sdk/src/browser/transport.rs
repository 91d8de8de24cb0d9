//! Delivery: when to send, the one request in flight, and what each answer means.
//!
//! `fetch` POSTs a `text/plain` body (a string body gets `text/plain;charset=UTF-8`, so there is
//! no CORS preflight) with `keepalive` when the body is ≤ 60 KB (keepalive and beacons share a
//! ~64 KB budget per page). On page hide the unsent rest goes to `navigator.sendBeacon` in ≤ 60 KB
//! chunks; a refused chunk stays queued (and persisted) for the next page load.
//! The rules themselves (status → verdict, backoff, batch limits) live in `core`.

use crate::browser::tracker::{Inner, Sdk, TICK_SEND};
use crate::browser::{get, now_ms};
use crate::core::backoff::{self, Verdict};
use crate::core::event;
use crate::core::queue::{Outcome, KEEPALIVE_BYTES, MAX_BATCH_BYTES, MAX_BATCH_COUNT};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Response;

#[wasm_bindgen]
extern "C" {
    /// The page's current global `fetch`, with its exceptions caught (web-sys's binding lets a
    /// synchronous throw unwind through us into the page).
    #[wasm_bindgen(catch, js_name = fetch)]
    fn fetch(url: &str, init: &Object) -> Result<JsValue, JsValue>;

    type Thenable;
    #[wasm_bindgen(method, catch)]
    fn then(
        this: &Thenable,
        ok: &js_sys::Function,
        err: &js_sys::Function,
    ) -> Result<JsValue, JsValue>;
}

/// Sends the next batch if the rules allow. `due`: the flush interval elapsed or a flush was
/// asked (ignore `flushAt`); `forced`: flush()/online (skip our own backoff wait, not the
/// server's `Retry-After`).
pub fn maybe_send(sdk: &Sdk, g: &mut Inner, due: bool, forced: bool) {
    if sdk.disabled || g.state.opt_out || g.queue.in_flight().is_some() {
        return;
    }
    let unsent = g.queue.unsent();
    if unsent == 0 {
        return;
    }
    let now = now_ms();
    if !due && unsent < sdk.cfg.flush_at && g.waiters.is_empty() {
        arm(sdk, g, now + sdk.cfg.flush_interval_ms as u64);
        return;
    }
    if !g.backoff.ready(now, forced) {
        arm(sdk, g, g.backoff.until);
        return;
    }
    send(sdk, g, now);
}

fn send(sdk: &Sdk, g: &mut Inner, now: u64) {
    let overhead = event::batch_overhead(&sdk.cfg.write_key_json, &g.common_json);
    let Some(batch) = g
        .queue
        .next_batch(overhead, MAX_BATCH_BYTES, MAX_BATCH_COUNT)
    else {
        return;
    };
    let body = event::batch_body(
        g.queue.messages(batch),
        batch.bytes,
        now,
        &sdk.cfg.write_key_json,
        &g.common_json,
    );
    let Some(fns) = sdk.fns.get() else { return };
    g.queue.begin(batch);
    // The queue header's time doubles as a liveness signal for other tabs (storage::STALE_MS).
    g.queue_dirty = true;
    sdk.schedule_task_end(g);
    let init = Object::new();
    let _ = Reflect::set(&init, &"method".into(), &"POST".into());
    let _ = Reflect::set(&init, &"body".into(), &JsValue::from_str(&body));
    // keepalive lets a request outlive the page, but Chrome rejects it outright (no request at
    // all, a network error to us) while the page's ~64 KB keepalive budget is taken — which it
    // can stay after a 413 answered before the body was read. So a keepalive request that fails
    // is retried at once without keepalive, and only a failure of that one counts for backoff.
    g.sent_keepalive = body.len() <= KEEPALIVE_BYTES && g.keepalive;
    if g.sent_keepalive {
        let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    }
    // A page may have replaced fetch with something that throws or returns junk: then this is
    // a network error like any other.
    let started = fetch(&sdk.cfg.url, &init)
        .ok()
        .filter(|p| p.is_instance_of::<js_sys::Promise>())
        .and_then(|p| {
            p.unchecked_ref::<Thenable>()
                .then(&fns.on_response, &fns.on_network_error)
                .ok()
        });
    if started.is_none() {
        settle(sdk, g, 0, None);
    }
}

/// Arms the single timer for `at` unless one is due sooner.
fn arm(sdk: &Sdk, g: &mut Inner, at: u64) {
    if let Some((id, due)) = g.timer {
        if due <= at {
            return;
        }
        sdk.win.clear_timeout_with_handle(id);
    }
    let Some(fns) = sdk.fns.get() else { return };
    let delay = at.saturating_sub(now_ms()).min(i32::MAX as u64) as i32;
    g.timer = sdk
        .win
        .set_timeout_with_callback_and_timeout_and_arguments_1(&fns.tick, delay, &TICK_SEND.into())
        .ok()
        .map(|id| (id, at));
}

pub fn on_response(sdk: &Sdk, r: &JsValue) {
    let Ok(mut g) = sdk.inner.try_borrow_mut() else {
        return;
    };
    let (status, retry_after) = match r.dyn_ref::<Response>() {
        Some(resp) => {
            let ra = resp
                .headers()
                .get("retry-after")
                .ok()
                .flatten()
                .and_then(|v| {
                    backoff::parse_retry_after_seconds(&v).or_else(|| {
                        let t = js_sys::Date::parse(&v);
                        t.is_finite().then(|| (t as u64).saturating_sub(now_ms()))
                    })
                });
            (resp.status(), ra)
        }
        None => (0, None),
    };
    settle(sdk, &mut g, status, retry_after);
}

pub fn on_network_error(sdk: &Sdk) {
    if let Ok(mut g) = sdk.inner.try_borrow_mut() {
        settle(sdk, &mut g, 0, None);
    }
}

fn settle(sdk: &Sdk, g: &mut Inner, status: u16, retry_after: Option<u64>) {
    let verdict = backoff::classify(status);
    if status == 0 && g.sent_keepalive {
        g.queue.finish(Outcome::Keep);
        g.keepalive = false;
        maybe_send(sdk, g, true, true);
        return;
    }
    g.keepalive = true;
    g.queue.finish(verdict.outcome());
    let now = now_ms();
    let random = g.rand.u32();
    match verdict {
        Verdict::Drop => sdk.warn(if status == 401 || status == 403 {
            "the ingest refused the write key or origin (401/403); batch dropped"
        } else {
            "the ingest rejected a batch for good; not resent"
        }),
        Verdict::Retry => sdk.warn("send failed; will retry"),
        _ => {}
    }
    g.backoff.record(verdict, now, random, retry_after);
    g.queue_dirty = true;
    sdk.schedule_task_end(g);
    sdk.settle_waiters(g);
    // A split batch goes out again at once (in halves); after an answer, a full batch or a
    // pending flush() keeps the pipeline going; a failure waits for its backoff.
    let due = match verdict {
        Verdict::Retry => false,
        _ => {
            g.queue.split_pending() || g.queue.unsent() >= sdk.cfg.flush_at || !g.waiters.is_empty()
        }
    };
    maybe_send(sdk, g, due, false);
}

/// Page hide: hand every unsent message to `sendBeacon`, ≤ 60 KB per call, until the browser
/// refuses one; what is refused stays queued.
///
/// A beacon the browser accepts is only handed over, not acknowledged. While the ingest answers
/// (no failure since the last success) we trust it and drop what was handed over; while it is
/// failing (backoff running) a beacon would most likely be lost, so the messages also stay in the
/// persisted queue and the next page load resends them — the ingest dedupes by messageId.
pub fn beacon_all(sdk: &Sdk, g: &mut Inner) {
    if sdk.disabled || g.state.opt_out {
        return;
    }
    let trusted = g.backoff.attempt == 0;
    let nav: web_sys::Navigator = get(&sdk.win, "navigator").unchecked_into();
    let overhead = event::batch_overhead(&sdk.cfg.write_key_json, &g.common_json);
    let mut after = 0;
    while let Some(b) = g
        .queue
        .next_batch_after(after, overhead, KEEPALIVE_BYTES, MAX_BATCH_COUNT)
    {
        let body = event::batch_body(
            g.queue.messages(b),
            b.bytes,
            now_ms(),
            &sdk.cfg.write_key_json,
            &g.common_json,
        );
        if !nav
            .send_beacon_with_opt_str(&sdk.cfg.url, Some(&body))
            .unwrap_or(false)
        {
            sdk.warn("sendBeacon refused; events stay queued");
            break;
        }
        after = b.last;
        if trusted {
            g.queue.remove(b);
            g.queue_dirty = true;
        }
    }
    sdk.settle_waiters(g);
}
