//! Browser tests of the timer edges of js/index.js, with the real release wasm (its own test
//! binary, so its own page: the tracker is one per page and keeps its listeners and timers).
//! The wasm decides when to send (core/machine.rs); these check that the JS wires it to the
//! page: the `timer` import (`m`) → `setTimeout` → `ff_cmd(5, which)`, so the flushIntervalMs timer
//! sends a batch after the interval with no other trigger and does not restart per event; and
//! the `micro`/end-of-task microtask, so `flushAt` events noted in one task go out before the
//! task's timers run.
//!
//! `fetch` is replaced on the page (as browser.rs does for its transport test): it serves the
//! wasm from sdk/pkg (the release build, `bash sdk/build.sh`; the test runner serves the crate
//! directory) and answers every batch 200, recording when it was sent. `make wasm-test` builds
//! sdk/pkg first; without it the test fails.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

// Page-side helpers: they are page plumbing (a fake network, a dynamic import, a sleep), not
// the code under test, and read more plainly as JS than as Rust closures.
#[wasm_bindgen(inline_js = r#"
const batches = [];
let tracker;
export async function start(options) {
  const real = fetch.bind(globalThis);
  // Checked first: without the release build there is no wasm to test.
  const probe = await real('/pkg/footfall_sdk_bg.wasm', { method: 'HEAD' });
  if (!probe.ok) return false;
  globalThis.fetch = (url, init) => {
    const u = String(url);
    if (u.endsWith('/footfall_sdk_bg.wasm')) return real('/pkg/footfall_sdk_bg.wasm');
    if (u.endsWith('/v1/batch')) {
      batches.push({ at: performance.now(), body: init.body });
      return Promise.resolve(new Response('', { status: 200 }));
    }
    return real(url, init);
  };
  // The adapter as in the source tree (its edges import each other relatively).
  // One module at a time, leaves first: the test runner's file server sometimes never answers
  // one of several parallel module requests, and the dynamic import then hangs (seen ~1 in 4
  // runs once index.js had a shared json.js dependency).
  for (const m of ['json', 'options', 'storage', 'transport', 'context', 'autocapture', 'wasm']) {
    await import(`/js/${m}.js`);
  }
  const { init } = await import('/js/index.js');
  tracker = await init(options);
  return true;
}
export const track = (name) => tracker.track(name);
export const batches_ = () => batches;
export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
"#)]
extern "C" {
    async fn start(options: &JsValue) -> JsValue;
    fn track(name: &str);
    #[wasm_bindgen(js_name = batches_)]
    fn batches() -> Array;
    fn now() -> f64;
    fn sleep(ms: f64) -> Promise;
}

const INTERVAL_MS: f64 = 300.0;
const FLUSH_AT: u32 = 3;

/// One recorded request: when it was sent and the events it carried, in order.
fn batch(i: u32) -> (f64, Vec<String>) {
    let b = batches().get(i);
    let at = Reflect::get(&b, &"at".into()).unwrap().as_f64().unwrap();
    let body = Reflect::get(&b, &"body".into())
        .unwrap()
        .as_string()
        .unwrap();
    let parsed = js_sys::JSON::parse(&body).unwrap();
    let events = Array::from(&Reflect::get(&parsed, &"batch".into()).unwrap())
        .iter()
        .map(|m| {
            Reflect::get(&m, &"event".into())
                .unwrap()
                .as_string()
                .unwrap()
        })
        .collect();
    (at, events)
}

async fn wait(ms: f64) {
    JsFuture::from(sleep(ms)).await.unwrap();
}

/// Waits (up to 5 s: the host is loaded) until `n` batches were sent.
async fn until_batches(n: u32) {
    let deadline = now() + 5_000.0;
    while batches().length() < n {
        assert!(
            now() < deadline,
            "{} batch(es) sent, waited for {n}",
            batches().length()
        );
        wait(20.0).await;
    }
}

// One test, in steps: the tracker (and so its config) is one per page.
#[wasm_bindgen_test]
async fn the_flush_interval_timer_and_the_end_of_task_send() {
    let o = Object::new();
    for (k, v) in [
        ("writeKey", JsValue::from("k")),
        ("apiHost", "http://ingest.invalid".into()),
        ("flushIntervalMs", INTERVAL_MS.into()),
        ("flushAt", FLUSH_AT.into()),
        ("autocapture", JsValue::FALSE),
        // No storage: nothing adopted from an earlier run, nothing left behind.
        ("persistence", "memory".into()),
    ] {
        Reflect::set(&o, &k.into(), &v).unwrap();
    }
    // `make wasm-test` builds sdk/pkg first: a missing build is a failure, never a silent skip.
    assert!(
        start(&o).await.as_bool().unwrap(),
        "no sdk/pkg/footfall_sdk_bg.wasm: run `bash sdk/build.sh` (make wasm-test does) first"
    );

    // 1. One event, below flushAt, nothing else happening: the interval timer alone sends it,
    //    not before the interval.
    let t0 = now();
    track("Alone");
    wait(INTERVAL_MS / 2.0).await;
    assert_eq!(batches().length(), 0, "sent before the interval");
    until_batches(1).await;
    let (at, events) = batch(0);
    assert_eq!(events, ["Alone"]);
    // setTimeout never fires early; 20 ms for Date.now (the wasm's clock) vs performance.now.
    assert!(
        at - t0 >= INTERVAL_MS - 20.0,
        "sent {} ms after the track",
        at - t0
    );

    // 2. Events noted while the timer runs do not push it back: one batch, one interval after
    //    the first of them.
    let t1 = now();
    track("Spread 1");
    wait(100.0).await;
    track("Spread 2");
    wait(100.0).await;
    assert_eq!(batches().length(), 1, "sent before the interval");
    until_batches(2).await;
    let (at, events) = batch(1);
    assert_eq!(events, ["Spread 1", "Spread 2"]);
    assert!(
        at - t1 >= INTERVAL_MS - 20.0,
        "sent {} ms after the first event",
        at - t1
    );
    wait(INTERVAL_MS * 2.0).await;
    assert_eq!(
        batches().length(),
        2,
        "the timer sent again with nothing queued"
    );

    // 3. flushAt events in one task: the end-of-task microtask hands them over and the batch
    //    goes out then, before any timer could run (this await resumes in a later microtask).
    for i in 1..=FLUSH_AT {
        track(&format!("Burst {i}"));
    }
    assert_eq!(
        batches().length(),
        2,
        "the calls wait for the end of the task"
    );
    JsFuture::from(Promise::resolve(&JsValue::UNDEFINED))
        .await
        .unwrap();
    assert_eq!(
        batches().length(),
        3,
        "flushAt reached: sent at the end of the task"
    );
    let (_, events) = batch(2);
    assert_eq!(events, ["Burst 1", "Burst 2", "Burst 3"]);
}
