//! Where the identity/session state and the unsent queue live: localStorage → cookie → memory.
//!
//! The state (small, see `core::persist`) goes to localStorage by default, to a first-party cookie
//! when asked or when localStorage throws (Safari private mode, blocked storage, quota), and to
//! nothing (memory only) when cookies fail too. The queue goes to localStorage only (never a
//! cookie: it would grow), under a per-tab key so two tabs never overwrite each other's events.
//!
//! Callers keep the state in memory and write at most once per task, on flush and on page hide;
//! reads happen at start and when a session would rotate (see `core::session`). Nothing here
//! ever throws: a failing write degrades to the next backend (or is skipped) and is reported
//! back so `debug` can warn.

use crate::browser::{get, get_str};
use crate::core::persist::{self, QueueHeader};
use crate::core::session::State;
use alloc::string::String;
use alloc::vec::Vec;
use wasm_bindgen::JsValue;
use web_sys::{Storage, Window};

/// Key (and cookie name) of the identity/session state.
pub const STATE_KEY: &str = "ff_id";
/// Prefix of each tab's queue key (`ff_q.<tab>`).
pub const QUEUE_PREFIX: &str = "ff_q.";
/// sessionStorage key of this tab's id: a reload keeps its queue key.
pub const TAB_KEY: &str = "ff_tab";
/// A queue not written for this long belongs to a tab that is gone (crashed): adopt it.
/// Live tabs with queued events rewrite theirs on every send attempt (≤ 60 s apart).
pub const STALE_MS: u64 = 5 * 60_000;
/// One year: how long the anonymous id is kept in a cookie.
const MAX_AGE: &str = "31536000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    LocalStorage,
    Cookie,
    Memory,
}

pub struct Store {
    pub state_in: Persistence,
    local: Option<Storage>,
    doc: JsValue,
    /// `; Max-Age=…; Path=/; SameSite=Lax[; Secure][; Domain=…]`
    cookie_attrs: String,
    pub queue_key: String,
    secure: bool,
}

fn local_storage(win: &Window) -> Option<Storage> {
    let s = win.local_storage().ok()??;
    // Probe: Safari private mode and full quotas only fail on write.
    s.set_item("ff_probe", "1").ok()?;
    s.remove_item("ff_probe").ok()?;
    Some(s)
}

impl Store {
    /// Opens storage as asked, falling back as needed. `tab` makes this tab's queue key.
    pub fn open(
        win: &Window,
        asked: Persistence,
        cookie_domain: &str,
        secure: bool,
        tab: &str,
    ) -> Store {
        let local = if asked == Persistence::Memory {
            None
        } else {
            local_storage(win)
        };
        let mut cookie_attrs = String::from("; Max-Age=");
        cookie_attrs.push_str(MAX_AGE);
        cookie_attrs.push_str("; Path=/; SameSite=Lax");
        if secure {
            cookie_attrs.push_str("; Secure");
        }
        if !cookie_domain.is_empty() {
            cookie_attrs.push_str("; Domain=");
            cookie_attrs.push_str(cookie_domain);
        }
        let mut queue_key = String::from(QUEUE_PREFIX);
        queue_key.push_str(tab);
        let mut store = Store {
            state_in: asked,
            local,
            doc: get(win, "document"),
            cookie_attrs,
            queue_key,
            secure,
        };
        if store.state_in == Persistence::LocalStorage && store.local.is_none() {
            store.state_in = Persistence::Cookie;
        }
        if store.state_in == Persistence::Cookie && !store.cookies_work() {
            store.state_in = Persistence::Memory;
        }
        store
    }

    /// The attributes every state cookie is written with.
    pub fn cookie_attributes(&self) -> &str {
        &self.cookie_attrs
    }

    fn cookies_work(&self) -> bool {
        let mut probe = String::from("ff_probe=1; Max-Age=10; Path=/; SameSite=Lax");
        if self.secure {
            probe.push_str("; Secure");
        }
        if !self.set_cookie(&probe) {
            return false;
        }
        let ok = self.cookie_value("ff_probe").is_some();
        self.set_cookie("ff_probe=; Max-Age=0; Path=/; SameSite=Lax");
        ok
    }

    fn set_cookie(&self, line: &str) -> bool {
        js_sys::Reflect::set(
            &self.doc,
            &JsValue::from_str("cookie"),
            &JsValue::from_str(line),
        )
        .is_ok()
    }

    /// The raw value of cookie `name`, if set.
    fn cookie_value(&self, name: &str) -> Option<String> {
        let all = js_sys::Reflect::get(&self.doc, &JsValue::from_str("cookie"))
            .ok()?
            .as_string()?;
        for part in all.split(';') {
            let part = part.trim_start();
            if let Some(v) = part.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(v.into());
            }
        }
        None
    }

    /// Reads the stored state fresh (another tab may have written it).
    pub fn read_state(&self) -> Option<State> {
        let raw = match self.state_in {
            Persistence::LocalStorage => self.local.as_ref()?.get_item(STATE_KEY).ok()??,
            Persistence::Cookie => {
                let v = self.cookie_value(STATE_KEY)?;
                js_sys::decode_uri_component(&v).ok()?.as_string()?
            }
            Persistence::Memory => return None,
        };
        persist::read_state(&raw)
    }

    /// Writes the state; on failure falls back (localStorage → cookie → memory). Returns false
    /// when a fallback happened.
    pub fn write_state(&mut self, s: &State) -> bool {
        let raw = persist::write_state(s);
        if self.state_in == Persistence::LocalStorage {
            if self
                .local
                .as_ref()
                .is_some_and(|l| l.set_item(STATE_KEY, &raw).is_ok())
            {
                return true;
            }
            self.state_in = Persistence::Cookie;
        }
        if self.state_in == Persistence::Cookie {
            let mut line = String::from(STATE_KEY);
            line.push('=');
            line.push_str(&String::from(js_sys::encode_uri_component(&raw)));
            line.push_str(&self.cookie_attrs);
            if self.set_cookie(&line) {
                return true;
            }
            self.state_in = Persistence::Memory;
            return false;
        }
        true
    }

    /// Forgets everything stored under our keys for this tab (privacy: nothing stored).
    pub fn remove_queue(&self) {
        if let Some(l) = &self.local {
            let _ = l.remove_item(&self.queue_key);
        }
    }

    /// Writes this tab's queue (removes the key when empty). Returns false when the browser
    /// refused (quota): the newest half is tried before giving up.
    pub fn write_queue(&self, header: QueueHeader, msgs: &[&str], bytes: usize) -> bool {
        let Some(l) = &self.local else { return true };
        if msgs.is_empty() {
            let _ = l.remove_item(&self.queue_key);
            return true;
        }
        let raw = persist::write_queue(header, msgs.iter().copied(), bytes + msgs.len());
        if l.set_item(&self.queue_key, &raw).is_ok() {
            return true;
        }
        let half = &msgs[msgs.len() / 2..];
        let raw = persist::write_queue(header, half.iter().copied(), bytes / 2 + half.len());
        if l.set_item(&self.queue_key, &raw).is_err() {
            let _ = l.remove_item(&self.queue_key);
        }
        false
    }

    /// Loads this tab's own queue and the queues of tabs that are gone (closed, or silent for
    /// [`STALE_MS`]); adopted keys are removed. Oldest first, at most `max`.
    pub fn take_queues(&mut self, now: u64, max: usize) -> Vec<String> {
        let Some(l) = self.local.clone() else {
            return Vec::new();
        };
        // Our own key may be held by a live twin (a duplicated tab copies sessionStorage): then
        // take a fresh key instead of fighting over it.
        if let Some(h) = l
            .get_item(&self.queue_key)
            .ok()
            .flatten()
            .as_deref()
            .and_then(persist::read_queue_header)
        {
            if !h.closed && now.saturating_sub(h.updated) < STALE_MS {
                self.queue_key = String::from(QUEUE_PREFIX);
                self.queue_key.push_str(&new_tab_id());
            }
        }
        let n = l.length().unwrap_or(0);
        let mut keys = Vec::new();
        for i in 0..n {
            if let Ok(Some(k)) = l.key(i) {
                if k.starts_with(QUEUE_PREFIX) {
                    keys.push(k);
                }
            }
        }
        let mut found: Vec<(u64, Vec<String>)> = Vec::new();
        for k in keys {
            let Ok(Some(raw)) = l.get_item(&k) else {
                continue;
            };
            let Some((h, msgs)) = persist::read_queue(&raw, max) else {
                // Foreign or corrupt data under our prefix: drop it.
                let _ = l.remove_item(&k);
                continue;
            };
            if k == self.queue_key || h.closed || now.saturating_sub(h.updated) >= STALE_MS {
                let _ = l.remove_item(&k);
                found.push((h.updated, msgs));
            }
        }
        // Oldest queue first (a handful of keys: selection, no sort machinery in the wasm).
        let mut out: Vec<String> = Vec::new();
        while let Some(pos) = found
            .iter()
            .enumerate()
            .min_by_key(|(_, f)| f.0)
            .map(|(i, _)| i)
        {
            if pos >= found.len() {
                break;
            }
            out.extend(found.swap_remove(pos).1);
        }
        let excess = out.len().saturating_sub(max);
        if excess > 0 {
            out = out.split_off(excess);
        }
        out
    }
}

/// This tab's id from sessionStorage (kept across reloads), or a new one.
pub fn tab_id(win: &Window) -> String {
    let ss = win.session_storage().ok().flatten();
    if let Some(id) = ss.as_ref().and_then(|s| s.get_item(TAB_KEY).ok().flatten()) {
        if !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return id;
        }
    }
    let id = new_tab_id();
    if let Some(s) = ss {
        let _ = s.set_item(TAB_KEY, &id);
    }
    id
}

fn new_tab_id() -> String {
    let r = (js_sys::Math::random() * 4_294_967_296.0) as u32;
    let mut s = String::with_capacity(8);
    for i in 0..8 {
        s.push(b"0123456789abcdef"[(r >> (i * 4) & 15) as usize] as char);
    }
    s
}

/// True for https pages (cookies then get `Secure`).
pub fn is_secure(win: &Window) -> bool {
    get_str(&get(win, "location"), "protocol") == "https:"
}
