//! The one exported type: `Tracker`, with the API of issue 3 (the JS adapter `sdk/js/index.js`
//! wraps it). Owns option parsing, argument checks (the only errors we throw: `TypeError`s naming
//! the argument) and the event pipeline: session step → message JSON → queue → delivery.
//!
//! All mutable state sits in one `RefCell<Inner>`, always taken with `try_borrow_mut`: if a page
//! callback re-enters us (a getter in `properties` calling `track`), the inner call is dropped
//! instead of panicking.

use crate::browser::context::{self, Page};
use crate::browser::random::Pool;
use crate::browser::storage::{self, Persistence, Store};
use crate::browser::{autocapture, get, lifecycle, now_ms, transport};
use crate::core::backoff::Backoff;
use crate::core::event::{self, Kind, Skip};
use crate::core::persist::QueueHeader;
use crate::core::queue::Queue;
use crate::core::session::{self, State};
use crate::core::{ids, json};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{OnceCell, RefCell};
use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use web_sys::Window;

/// Parsed options (defaults from issue 3).
pub struct Config {
    pub write_key_json: String,
    pub url: String,
    pub persistence: Persistence,
    pub cookie_domain: String,
    pub session: session::Config,
    pub flush_at: usize,
    pub flush_interval_ms: u32,
    pub max_queue: usize,
    pub pageviews: bool,
    pub clicks: bool,
    pub respect_privacy: bool,
    pub debug: bool,
}

/// JS functions made once and reused (one request in flight means one pair of fetch callbacks).
pub struct Fns {
    /// Microtask (no argument: end of task) and timers (argument `TICK_*`).
    pub tick: Function,
    pub on_response: Function,
    pub on_network_error: Function,
}

pub struct Inner {
    pub state: State,
    /// The next event is the first of a session started in this tab.
    pub start_pending: bool,
    /// Campaign key of a page just opened, consumed by its first event.
    pub pending_campaign: u32,
    pub queue: Queue,
    pub backoff: Backoff,
    pub store: Store,
    pub rand: Pool,
    pub page: Page,
    pub common_json: String,
    /// Pending timer: (handle, due ms).
    pub timer: Option<(i32, u64)>,
    pub task_end_scheduled: bool,
    /// A delayed write of a large queue is pending (see `persist`).
    pub queue_write_timer: bool,
    pub state_dirty: bool,
    pub queue_dirty: bool,
    pub hidden: bool,
    /// Send with `keepalive` (off after a network error until the next answer; see transport).
    pub keepalive: bool,
    /// The request in flight was sent with `keepalive`.
    pub sent_keepalive: bool,
    /// flush() promises: resolve once nothing queued before `mark` is left.
    pub waiters: Vec<(u64, Function)>,
}

pub struct Sdk {
    pub win: Window,
    pub cfg: Config,
    /// DNT/GPC with respectPrivacySignals: nothing sent, nothing stored, no listeners.
    pub disabled: bool,
    pub inner: RefCell<Inner>,
    pub fns: OnceCell<Fns>,
}

fn type_error(msg: &str) -> JsValue {
    let mut m = String::from("footfall: ");
    m.push_str(msg);
    js_sys::TypeError::new(&m).into()
}

/// Queues above this many bytes are written at most every [`LARGE_QUEUE_WRITE_MS`].
const LARGE_QUEUE_BYTES: usize = 64 * 1024;
const LARGE_QUEUE_WRITE_MS: i32 = 1_000;

const OPTIONS: [&str; 12] = [
    "writeKey",
    "apiHost",
    "persistence",
    "cookieDomain",
    "sessionTimeoutMinutes",
    "maxSessionHours",
    "flushAt",
    "flushIntervalMs",
    "maxQueueSize",
    "autocapture",
    "respectPrivacySignals",
    "debug",
];

/// True for `{}`-style objects (any realm) and `Object.create(null)`; false for arrays, dates,
/// class instances, functions and primitives.
fn is_plain_object(v: &JsValue) -> bool {
    if !v.is_object() || js_sys::Array::is_array(v) {
        return false;
    }
    let proto = Object::get_prototype_of(v);
    proto.is_null() || Object::get_prototype_of(&proto).is_null()
}

fn number_option(o: &JsValue, key: &str, default: f64, min: f64) -> Result<f64, JsValue> {
    let v = get(o, key);
    if v.is_undefined() {
        return Ok(default);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= min => Ok(n),
        _ => {
            let mut m = String::from(key);
            m.push_str(" must be a number ≥ ");
            json::push_u64(&mut m, min as u64);
            Err(type_error(&m))
        }
    }
}

fn bool_option(o: &JsValue, key: &str, default: bool) -> Result<bool, JsValue> {
    let v = get(o, key);
    if v.is_undefined() {
        Ok(default)
    } else {
        v.as_bool().ok_or_else(|| {
            let mut m = String::from(key);
            m.push_str(" must be a boolean");
            type_error(&m)
        })
    }
}

fn string_option(o: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = get(o, key);
    if v.is_undefined() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| {
        let mut m = String::from(key);
        m.push_str(" must be a string");
        type_error(&m)
    })
}

fn parse_options(win: &Window, o: &JsValue) -> Result<Config, JsValue> {
    if !is_plain_object(o) {
        return Err(type_error("options must be an object with a writeKey"));
    }
    for k in Object::keys(o.unchecked_ref::<Object>()).iter() {
        let k = k.as_string().unwrap_or_default();
        if !OPTIONS.contains(&k.as_str()) {
            let mut m = String::from("unknown option '");
            m.push_str(&k);
            m.push('\'');
            return Err(type_error(&m));
        }
    }
    let write_key = string_option(o, "writeKey")?.unwrap_or_default();
    if write_key.is_empty() {
        return Err(type_error("writeKey is required (a non-empty string)"));
    }
    let mut write_key_json = String::new();
    json::push_str(&mut write_key_json, &write_key);
    let mut url = match string_option(o, "apiHost")? {
        Some(h) if !h.is_empty() => h,
        _ => crate::browser::get_str(&get(win, "location"), "origin"),
    };
    while url.ends_with('/') {
        url.pop();
    }
    url.push_str("/v1/batch");
    let persistence = match string_option(o, "persistence")?.as_deref() {
        None | Some("localStorage") => Persistence::LocalStorage,
        Some("cookie") => Persistence::Cookie,
        Some("memory") => Persistence::Memory,
        Some(_) => {
            return Err(type_error(
                "persistence must be 'localStorage', 'cookie' or 'memory'",
            ))
        }
    };
    let (pageviews, clicks) = match get(o, "autocapture") {
        v if v.is_undefined() => (true, true),
        v if v.as_bool().is_some() => {
            let b = v.as_bool().unwrap_or(true);
            (b, b)
        }
        v if is_plain_object(&v) => {
            for k in Object::keys(v.unchecked_ref::<Object>()).iter() {
                let k = k.as_string().unwrap_or_default();
                if k != "pageviews" && k != "clicks" {
                    let mut m = String::from("unknown option 'autocapture.");
                    m.push_str(&k);
                    m.push('\'');
                    return Err(type_error(&m));
                }
            }
            (
                bool_option(&v, "pageviews", true)?,
                bool_option(&v, "clicks", true)?,
            )
        }
        _ => {
            return Err(type_error(
                "autocapture must be a boolean or { pageviews, clicks }",
            ))
        }
    };
    Ok(Config {
        write_key_json,
        url,
        persistence,
        cookie_domain: string_option(o, "cookieDomain")?.unwrap_or_default(),
        // Fractions count (a 0.5-minute timeout is handy in tests).
        session: session::Config {
            idle_ms: ((number_option(o, "sessionTimeoutMinutes", 30.0, 0.0)? * 60_000.0) as u64)
                .max(1),
            max_ms: ((number_option(o, "maxSessionHours", 24.0, 0.0)? * 3_600_000.0) as u64).max(1),
        },
        flush_at: number_option(o, "flushAt", 20.0, 1.0)? as usize,
        flush_interval_ms: number_option(o, "flushIntervalMs", 5000.0, 0.0)?.min(2_147_483_647.0)
            as u32,
        max_queue: number_option(o, "maxQueueSize", 1000.0, 1.0)? as usize,
        pageviews,
        clicks,
        respect_privacy: bool_option(o, "respectPrivacySignals", true)?,
        debug: bool_option(o, "debug", false)?,
    })
}

impl Sdk {
    pub fn warn(&self, what: &str) {
        if self.cfg.debug {
            web_sys::console::warn_2(&JsValue::from_str("footfall:"), &JsValue::from_str(what));
        }
    }

    /// Queues one message. `name`: event name (track), page name (page) or user id (identify);
    /// `payload`: the serialized properties/traits (a JSON object).
    pub fn enqueue(&self, kind: Kind, name: &str, payload: &str, call: &Call) {
        if self.disabled {
            return;
        }
        let Ok(mut g) = self.inner.try_borrow_mut() else {
            return;
        };
        let g = &mut *g;
        if g.state.opt_out {
            return;
        }
        let now = now_ms();
        let campaign = core::mem::take(&mut g.pending_campaign);
        let (store, rand) = (&g.store, &mut g.rand);
        let rotated = session::step(
            &mut g.state,
            now,
            &self.cfg.session,
            campaign,
            || store.read_state(),
            || ids::v7(now, rand.bytes()),
        );
        if rotated.is_some() {
            g.start_pending = true;
        }
        // identify: the user id is set after the session step, so adopting another tab's newer
        // state cannot undo it.
        if kind == Kind::Identify {
            g.state.user_id = String::from(name);
        }
        let msg = event::build(&event::Message {
            kind,
            message_random: g.rand.bytes(),
            anonymous_id: &g.state.anonymous_id,
            user_id: &g.state.user_id,
            timestamp_ms: call.timestamp.unwrap_or(now),
            name,
            payload_json: payload,
            page_json: &g.page.json,
            campaign_json: &g.page.campaign_json,
            session_id: &g.state.session_id,
            session_start: core::mem::take(&mut g.start_pending),
            user_context_json: call.context_json,
            skip: call.skip,
        });
        if !g.queue.push(msg) {
            self.warn("event dropped: larger than 30 KB");
        }
        g.state_dirty = true;
        g.queue_dirty = true;
        self.schedule_task_end(g);
        transport::maybe_send(self, g, false, false);
    }

    /// Writes dirty state at the end of the current task (one write however many calls).
    pub fn schedule_task_end(&self, g: &mut Inner) {
        if g.task_end_scheduled {
            return;
        }
        if let Some(f) = self.fns.get() {
            g.task_end_scheduled = true;
            self.win.queue_microtask(&f.tick);
        }
    }

    /// Persists what changed (the queue header says `closed` while the page is hidden, so
    /// another tab may adopt it). `force_queue` writes even a large queue now.
    pub fn persist(&self, g: &mut Inner, force_queue: bool) {
        g.task_end_scheduled = false;
        if self.disabled {
            return;
        }
        if g.state_dirty {
            g.state_dirty = false;
            if !g.store.write_state(&g.state) {
                self.warn("storage failed; ids kept in memory");
            }
        }
        // A large queue (a burst, or the ingest down) is rewritten at most once a second, plus
        // always on page hide: a 10,000-event burst must not cost a multi-MB localStorage write
        // per task. A crash loses at most the last second of such a burst.
        if g.queue_dirty && !force_queue && !g.hidden && g.queue.bytes() > LARGE_QUEUE_BYTES {
            if !g.queue_write_timer {
                if let Some(f) = self.fns.get() {
                    g.queue_write_timer = self
                        .win
                        .set_timeout_with_callback_and_timeout_and_arguments_1(
                            &f.tick,
                            LARGE_QUEUE_WRITE_MS,
                            &TICK_QUEUE_WRITE.into(),
                        )
                        .is_ok();
                }
            }
            return;
        }
        if g.queue_dirty {
            g.queue_dirty = false;
            let msgs: Vec<&str> = if g.state.opt_out {
                Vec::new()
            } else {
                g.queue.all().collect()
            };
            let header = QueueHeader {
                updated: now_ms(),
                closed: g.hidden,
            };
            if !g.store.write_queue(header, &msgs, g.queue.bytes()) {
                self.warn("queue too large for localStorage; kept the newest part");
            }
        }
    }

    /// Resolves the flush() promises whose messages are all settled.
    pub fn settle_waiters(&self, g: &mut Inner) {
        let q = &g.queue;
        g.waiters.retain(|(mark, resolve)| {
            let pending = q.holds_before(*mark);
            if !pending {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
            pending
        });
    }

    /// A navigation happened (history patch, popstate, bfcache restore): refresh the page
    /// context; a new path or query (or `force`) is a pageview.
    pub fn on_navigation(&self, force: bool) {
        let route_changed = {
            let Ok(mut g) = self.inner.try_borrow_mut() else {
                return;
            };
            let page = context::page(&self.win);
            let changed = page.route != g.page.route;
            if changed || force {
                g.pending_campaign = page.campaign_key;
            }
            g.page = page;
            changed
        };
        if self.cfg.pageviews && (route_changed || force) {
            self.enqueue(Kind::Page, "", "{}", &Call::default());
        }
    }
}

/// What the adapter extracted from a call's Segment-style `options`.
#[derive(Default)]
pub struct Call<'a> {
    /// `options.timestamp` in ms (when valid).
    pub timestamp: Option<u64>,
    /// `JSON.stringify(options.context)`, or empty.
    pub context_json: &'a str,
    /// Which of our context keys `options.context` holds.
    pub skip: Skip,
}

/// The tracker object `init()` resolves to.
#[wasm_bindgen]
pub struct Tracker {
    sdk: Rc<Sdk>,
}

#[wasm_bindgen]
impl Tracker {
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Tracker, JsValue> {
        let win: Window = js_sys::global().unchecked_into();
        let cfg = parse_options(&win, &options)?;
        let disabled = cfg.respect_privacy && context::privacy_signal(&win);
        let now = now_ms();
        let mut rand = Pool::new(win.crypto().ok());
        // Under a privacy signal nothing touches storage, not even the tab id.
        let (store, tab) = if disabled {
            (
                Store::open(&win, Persistence::Memory, "", false, ""),
                String::new(),
            )
        } else {
            let tab = storage::tab_id(&win);
            (
                Store::open(
                    &win,
                    cfg.persistence,
                    &cfg.cookie_domain,
                    storage::is_secure(&win),
                    &tab,
                ),
                tab,
            )
        };
        let _ = tab;
        let mut state = store.read_state().unwrap_or_default();
        if state.anonymous_id.is_empty() {
            state.anonymous_id = ids::v4(rand.bytes());
        }
        let page = context::page(&win);
        let mut queue = Queue::new(cfg.max_queue);
        let mut store = store;
        if !disabled {
            for m in store.take_queues(now, cfg.max_queue) {
                queue.push(m);
            }
        }
        let adopted = !queue.is_empty();
        let inner = Inner {
            state,
            start_pending: false,
            pending_campaign: page.campaign_key,
            queue,
            backoff: Backoff::default(),
            store,
            rand,
            common_json: context::common(&win),
            page,
            timer: None,
            task_end_scheduled: false,
            queue_write_timer: false,
            state_dirty: true,
            queue_dirty: true,
            hidden: false,
            keepalive: true,
            sent_keepalive: false,
            waiters: Vec::new(),
        };
        let sdk = Rc::new(Sdk {
            win,
            cfg,
            disabled,
            inner: RefCell::new(inner),
            fns: OnceCell::new(),
        });
        let _ = sdk.fns.set(make_fns(&sdk));
        if !disabled {
            lifecycle::install(&sdk);
            autocapture::install(&sdk);
            if sdk.cfg.pageviews {
                sdk.enqueue(Kind::Page, "", "{}", &Call::default());
            }
            if let Ok(mut g) = sdk.inner.try_borrow_mut() {
                sdk.schedule_task_end(&mut g);
                // Events adopted from storage go out now (they already waited); otherwise the
                // load pageview waits for flushAt / the interval like any event.
                transport::maybe_send(&sdk, &mut g, adopted, false);
            }
        }
        Ok(Tracker { sdk })
    }

    /// The adapter's one entry point for `track` (kind 0), `page` (1) and `identify` (2).
    ///
    /// `sdk/js/index.js` checks the arguments (throwing the documented TypeErrors) and runs
    /// `JSON.stringify` itself: doing that here cost ~15 JS↔wasm crossings per call (type checks,
    /// prototype walks, stringify, string reads) and made a `track()` ~6 µs; one call with two
    /// strings is what the 2 µs/call budget of issue 5 allows. `name` is the event name, page
    /// name or user id; `payload` the properties/traits JSON; `timestamp` NaN when not given;
    /// `context` the `options.context` JSON or ""; `skip` bits: page, campaign, sessionId,
    /// sessionStart present in `options.context`.
    #[wasm_bindgen(js_name = "_e")]
    pub fn event(
        &self,
        kind: u8,
        name: &str,
        payload: &str,
        timestamp: f64,
        context: &str,
        skip: u8,
    ) {
        let kind = match kind {
            0 => Kind::Track,
            1 => Kind::Page,
            _ => Kind::Identify,
        };
        if kind == Kind::Page {
            // An explicit page() call describes the page as it is now (the title may have changed).
            if let Ok(mut g) = self.sdk.inner.try_borrow_mut() {
                g.page = context::page(&self.sdk.win);
            }
        }
        let payload = if json::looks_like_object(payload) {
            payload
        } else {
            "{}"
        };
        let call = Call {
            timestamp: (timestamp.is_finite() && timestamp >= 0.0).then_some(timestamp as u64),
            context_json: if json::looks_like_object(context) {
                context
            } else {
                ""
            },
            skip: Skip {
                page: skip & 1 != 0,
                campaign: skip & 2 != 0,
                session_id: skip & 4 != 0,
                session_start: skip & 8 != 0,
            },
        };
        self.sdk.enqueue(kind, name, payload, &call);
    }

    /// Logout: forget the user, new anonymous id, new session.
    pub fn reset(&self) {
        let Ok(mut g) = self.sdk.inner.try_borrow_mut() else {
            return;
        };
        let g = &mut *g;
        let now = now_ms();
        let anon = ids::v4(g.rand.bytes());
        let sid = ids::v7(now, g.rand.bytes());
        g.state.reset(anon, sid, now);
        g.start_pending = true;
        g.pending_campaign = 0;
        g.state_dirty = true;
        self.sdk.schedule_task_end(g);
    }

    /// Resolves when everything queued so far is acknowledged or failed for good.
    pub fn flush(&self) -> Promise {
        let done = || Promise::resolve(&JsValue::UNDEFINED);
        if self.sdk.disabled {
            return done();
        }
        let Ok(mut g) = self.sdk.inner.try_borrow_mut() else {
            return done();
        };
        let mark = g.queue.mark();
        if !g.queue.holds_before(mark) {
            return done();
        }
        let mut resolver = None;
        let p = Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
        if let Some(r) = resolver {
            g.waiters.push((mark, r));
        }
        transport::maybe_send(&self.sdk, &mut g, true, true);
        p
    }

    /// Stop sending and storing events (persisted); drops the queue.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.set_opt_out(true);
    }

    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        self.set_opt_out(false);
    }

    #[wasm_bindgen(js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.sdk
            .inner
            .try_borrow()
            .map(|g| g.state.session_id.clone())
            .unwrap_or_default()
    }

    #[wasm_bindgen(js_name = anonymousId)]
    pub fn anonymous_id(&self) -> String {
        self.sdk
            .inner
            .try_borrow()
            .map(|g| g.state.anonymous_id.clone())
            .unwrap_or_default()
    }

    #[wasm_bindgen(js_name = userId)]
    pub fn user_id(&self) -> Option<String> {
        let g = self.sdk.inner.try_borrow().ok()?;
        (!g.state.user_id.is_empty()).then(|| g.state.user_id.clone())
    }
}

impl Tracker {
    fn set_opt_out(&self, out: bool) {
        if self.sdk.disabled {
            return;
        }
        let Ok(mut g) = self.sdk.inner.try_borrow_mut() else {
            return;
        };
        let g = &mut *g;
        g.state.opt_out = out;
        if out {
            g.queue.clear();
            self.sdk.settle_waiters(g);
        }
        g.state_dirty = true;
        g.queue_dirty = true;
        // Consent changes are written at once, not at the end of the task.
        self.sdk.persist(g, true);
    }
}

/// Argument of the `tick` callback for each timer (a microtask passes none: end of task).
pub const TICK_SEND: u32 = 1;
pub const TICK_QUEUE_WRITE: u32 = 2;

fn make_fns(sdk: &Rc<Sdk>) -> Fns {
    // Few closures on purpose: each costs an invoke shim in the wasm and a wrapper in the glue.
    let s = sdk.clone();
    let tick = Closure::<dyn FnMut(JsValue)>::new(move |arg: JsValue| {
        let Ok(mut g) = s.inner.try_borrow_mut() else {
            return;
        };
        match arg.as_f64().map(|f| f as u32) {
            Some(TICK_SEND) => {
                g.timer = None;
                transport::maybe_send(&s, &mut g, true, false);
            }
            Some(TICK_QUEUE_WRITE) => {
                g.queue_write_timer = false;
                s.persist(&mut g, true);
            }
            _ => s.persist(&mut g, false),
        }
    });
    let s = sdk.clone();
    let on_response =
        Closure::<dyn FnMut(JsValue)>::new(move |r: JsValue| transport::on_response(&s, &r));
    let s = sdk.clone();
    let on_network_error =
        Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| transport::on_network_error(&s));
    Fns {
        tick: tick.into_js_value().unchecked_into(),
        on_response: on_response.into_js_value().unchecked_into(),
        on_network_error: on_network_error.into_js_value().unchecked_into(),
    }
}
