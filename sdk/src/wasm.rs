//! The release wasm's boundary (wasm32, no_std only): a few plain exports taking numbers and
//! strings laid out in a shared buffer, and twelve plain imports from the JS edges
//! (sdk/js/wasm.js). No wasm-bindgen: its glue and per-import shims were most of the download.
//!
//! Strings in: JS asks `ff_buf(capacity)` for a buffer, writes UTF-8 strings separated by the
//! byte 0xFF (which UTF-8 never contains) and passes the byte count. Strings out (imports): a
//! pointer and a length into the memory. Results of the getters: `ff_out()` + the length.
//!
//! Names on the wire are one letter (each is in the download twice, in the wasm and in the JS;
//! sdk/js/index.js names them again where it uses them):
//! - exports: `b` ff_buf, `o` ff_out, `i` ff_init, `q` ff_adopt (a stored queue), `e` ff_event,
//!   `n` ff_nav, `r` ff_answer (a response), `c` ff_cmd;
//! - imports (module `env`): `n` now, `i` iso, `r` rand, `l` load, `t` take, `s` save,
//!   `p` send (POST), `b` beacon, `m` timer, `u` micro, `w` warn, `d` settled.
//!
//! Re-entrancy: a page callback we trigger (a replaced `fetch`, a storage getter) may call the
//! SDK again while the machine is busy; `ff_buf` then answers 0, so nothing enters the machine
//! mid-call (as the `try_borrow_mut` of the former bindgen code did). sdk/js/index.js asks
//! first and runs such a call right after the busy one returns (a microtask): track/page/
//! identify calls wait for that drain, commands (`ff_cmd`: reset, optOut, optIn, flush…) and a
//! history change's pageview are queued for it; only a getter (sessionId, anonymousId, userId),
//! which cannot wait, answers ''. Anything else that reaches a busy export is dropped.

use crate::core::event::{Kind, Skip};
use crate::core::machine::{Config, Host, Machine};
use crate::core::session;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};

#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "n"]
    fn now() -> f64;
    /// Writes `Date.prototype.toISOString` for `ms` at `ptr` (at most 24 bytes, whole UTF-8
    /// characters: TextEncoder.encodeInto); the byte count.
    #[link_name = "i"]
    fn iso(ms: f64, ptr: *mut u8) -> usize;
    #[link_name = "r"]
    fn rand(ptr: *mut u8, len: usize);
    /// Reads the stored state; its UTF-8 length, or -1 when there is none. `take` copies it.
    #[link_name = "l"]
    fn load() -> i32;
    #[link_name = "t"]
    fn take(ptr: *mut u8);
    #[link_name = "s"]
    fn save(slot: u32, ptr: *const u8, len: usize) -> u32;
    #[link_name = "p"]
    fn send(ptr: *const u8, len: usize, keepalive: u32) -> u32;
    #[link_name = "b"]
    fn beacon(ptr: *const u8, len: usize) -> u32;
    #[link_name = "m"]
    fn timer(which: u32, delay: f64);
    #[link_name = "u"]
    fn micro();
    #[link_name = "w"]
    fn warn(what: u32);
    #[link_name = "d"]
    fn settled(id: u32);
}

struct JsHost;

impl Host for JsHost {
    fn now(&mut self) -> u64 {
        let t = unsafe { now() };
        if t > 0.0 {
            t as u64
        } else {
            0
        }
    }
    fn iso(&mut self, ms: u64, out: &mut String) {
        out.reserve(24);
        // SAFETY: the edge writes at most 24 bytes of whole UTF-8 characters into the spare
        // capacity and says how many; those become part of the string.
        unsafe {
            let v = out.as_mut_vec();
            let n = iso(ms as f64, v.as_mut_ptr().add(v.len()));
            v.set_len(v.len() + n.min(24));
        }
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        unsafe { rand(buf.as_mut_ptr(), buf.len()) }
    }
    fn read_state(&mut self) -> Option<String> {
        let n = unsafe { load() };
        if n < 0 {
            return None;
        }
        let mut v = vec![0u8; n as usize];
        unsafe { take(v.as_mut_ptr()) };
        // SAFETY: the edge wrote TextEncoder output, which is always valid UTF-8 (junk in it
        // fails the format check in core::persist). The check alone cost 800 bytes of wasm.
        Some(unsafe { String::from_utf8_unchecked(v) })
    }
    fn save(&mut self, slot: u32, raw: &str) -> bool {
        unsafe { save(slot, raw.as_ptr(), raw.len()) != 0 }
    }
    fn send(&mut self, body: &str, keepalive: bool) -> bool {
        unsafe { send(body.as_ptr(), body.len(), keepalive as u32) != 0 }
    }
    fn beacon(&mut self, body: &str) -> bool {
        unsafe { beacon(body.as_ptr(), body.len()) != 0 }
    }
    fn timer(&mut self, which: u32, delay_ms: u64) {
        unsafe { timer(which, delay_ms as f64) }
    }
    fn microtask(&mut self) {
        unsafe { micro() }
    }
    fn warn(&mut self, what: u32) {
        unsafe { warn(what) }
    }
    fn settled(&mut self, id: u32) {
        unsafe { settled(id) }
    }
}

struct Global {
    machine: UnsafeCell<Option<Machine<JsHost>>>,
    input: UnsafeCell<Vec<u8>>,
    /// Where the last getter's answer is: a field of the machine's state, read by the JS edge
    /// right after the call (before any other call can change it).
    out: Cell<*const u8>,
    busy: Cell<bool>,
}

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Global {}

static G: Global = Global {
    machine: UnsafeCell::new(None),
    input: UnsafeCell::new(Vec::new()),
    out: Cell::new(core::ptr::null()),
    busy: Cell::new(false),
};

/// Runs `f` with the machine and the first `n` input bytes split into strings, unless a call
/// is already running (re-entrancy from a page callback: dropped; the JS edge defers its own).
fn with<R: Default>(n: usize, f: impl FnOnce(&mut Option<Machine<JsHost>>, &[&str; 16]) -> R) -> R {
    if G.busy.replace(true) {
        return R::default();
    }
    // SAFETY: `busy` makes this the only live reference to the machine and the input; the input
    // is not resized while busy (ff_buf refuses).
    let (m, input) = unsafe { (&mut *G.machine.get(), &*G.input.get()) };
    let r = f(m, &split_input(input, n));
    G.busy.set(false);
    r
}

/// The first `n` input bytes split at 0xFF. Not inlined: one copy for every export (`with` is
/// instantiated once per export).
#[inline(never)]
fn split_input(input: &[u8], n: usize) -> [&str; 16] {
    let bytes = input.get(..n).unwrap_or(&[]);
    let mut parts = [""; 16];
    for (slot, p) in parts.iter_mut().zip(bytes.split(|&b| b == 0xFF)) {
        // SAFETY: the JS edge writes TextEncoder output, always valid UTF-8, split at 0xFF
        // bytes, which never occur inside UTF-8.
        *slot = unsafe { core::str::from_utf8_unchecked(p) };
    }
    parts
}

/// An input buffer of `cap` bytes for the next call; 0 while a call is running.
#[export_name = "b"]
pub extern "C" fn ff_buf(cap: usize) -> *mut u8 {
    if G.busy.get() {
        return core::ptr::null_mut();
    }
    // SAFETY: not busy: nothing borrows the input.
    let input = unsafe { &mut *G.input.get() };
    if input.len() < cap {
        // A new zeroed buffer (the old bytes are spent; `resize` is bigger wasm), of the
        // allocator's power-of-two size class, so it grows by doubling as `resize` did.
        *input = vec![0; cap.next_power_of_two()];
    }
    input.as_mut_ptr()
}

/// Where a getter's answer is (its length is what `ff_cmd` returned): the machine's own string,
/// not a copy (−16 B gzip), valid until the next call, so read at once.
#[export_name = "o"]
pub extern "C" fn ff_out() -> *const u8 {
    G.out.get()
}

/// Creates the tracker. Strings: the write key as a JSON string, the batch-level context JSON,
/// then the page (see `Machine::set_page`). flags: bit 0 pageviews, bit 1 disabled.
#[export_name = "i"]
pub extern "C" fn ff_init(
    n: usize,
    idle_ms: f64,
    max_ms: f64,
    flush_at: f64,
    interval_ms: f64,
    max_queue: f64,
    flags: u32,
) {
    with(n, |m, s| {
        let cfg = Config {
            write_key_json: String::from(s[0]),
            session: session::Config {
                idle_ms: (idle_ms as u64).max(1),
                max_ms: (max_ms as u64).max(1),
            },
            flush_at: (flush_at as usize).max(1),
            flush_interval_ms: interval_ms as u64,
            max_queue: (max_queue as usize).max(1),
            pageviews: flags & 1 != 0,
            disabled: flags & 2 != 0,
        };
        let mut t = Machine::new(JsHost, cfg, String::from(s[1]));
        t.set_page([s[2], s[3], s[4]], true);
        // The adapter creates one tracker per page; a second init keeps the first without
        // dropping it (its drop glue would cost wasm bytes for a call that never happens).
        if m.is_none() {
            *m = Some(t);
        } else {
            core::mem::forget(t);
        }
    })
}

/// A stored queue found at start (see `Machine::adopt`). String: its raw value.
#[export_name = "q"]
pub extern "C" fn ff_adopt(n: usize, now: f64) -> u32 {
    with(n, |m, s| {
        m.as_mut().map(|m| m.adopt(s[0], now as u64)).unwrap_or(0)
    })
}

/// track (0), page (1), identify (2). Strings: name, properties/traits JSON, options.context
/// JSON (or ""), then for page the page fields. `ts`: options.timestamp in ms, or NaN.
/// `skip` bits: page, campaign, sessionId, sessionStart present in options.context. `at`: when
/// the page made the call (ms).
#[export_name = "e"]
pub extern "C" fn ff_event(n: usize, kind: u32, ts: f64, skip: u32, at: f64) {
    with(n, |m, s| {
        let Some(m) = m else { return };
        let kind = match kind {
            0 => Kind::Track,
            1 => Kind::Page,
            _ => Kind::Identify,
        };
        if kind == Kind::Page {
            // An explicit page() describes the page as it is now (the title may have changed).
            m.set_page([s[3], s[4], s[5]], false);
        }
        let ms = |t: f64| (t.is_finite() && t >= 0.0).then_some(t as u64);
        m.enqueue(kind, s[0], s[1], ms(ts), s[2], Skip(skip), ms(at));
    })
}

/// A navigation (history change, popstate; `force`: bfcache restore). Strings: the page
/// fields of `Machine::set_page`.
#[export_name = "n"]
pub extern "C" fn ff_nav(n: usize, force: u32) {
    with(n, |m, s| {
        if let Some(m) = m {
            m.navigation([s[0], s[1], s[2]], force != 0);
        }
    })
}

/// The answer to the request in flight (status 0: network error). String: Retry-After.
/// `date_ms`: ms until Retry-After read as an HTTP date (NaN when it is not one).
#[export_name = "r"]
pub extern "C" fn ff_answer(n: usize, status: u32, date_ms: f64) {
    with(n, |m, s| {
        if let Some(m) = m {
            let ra = Machine::<JsHost>::retry_after(s[0], date_ms);
            m.answer(status.min(999) as u16, ra);
        }
    })
}

/// Everything else, by opcode: 0 start, 1 reset, 2 flush(id) → 2 when done now, 1 when promise
/// `id` settles later (0: busy), 3 optOut,
/// 4 optIn, 5 tick(arg), 6 hide, 7 show, 8 online, 9 sessionId, 10 anonymousId, 11 userId
/// (→ length of the answer at `ff_out`).
#[export_name = "c"]
pub extern "C" fn ff_cmd(op: u32, arg: u32) -> u32 {
    with(0, |m, _| {
        let Some(m) = m else { return 0 };
        let answer = |s: &str| {
            G.out.set(s.as_ptr());
            s.len() as u32
        };
        match op {
            0 => m.start(),
            1 => m.reset(),
            2 => return if m.flush(arg) { 2 } else { 1 },
            3 => m.set_opt_out(true),
            4 => m.set_opt_out(false),
            5 => m.tick(arg),
            6 => m.hide(),
            7 => m.show(),
            8 => m.online(),
            9 => return answer(&m.state.session_id),
            10 => return answer(&m.state.anonymous_id),
            11 => return answer(&m.state.user_id),
            _ => {}
        }
        0
    })
}
