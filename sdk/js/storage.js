//! Where the identity/session state and this tab's unsent queue live: localStorage → cookie →
//! memory. The formats and every decision (what to write, when, which stored queue to adopt) are
//! the wasm's (core/persist.rs, core/machine.rs); this edge only reads and writes strings and
//! never throws.
//!
//! The state goes to localStorage by default, to a first-party cookie when asked or when
//! localStorage throws (Safari private mode, blocked storage, quota), and to nothing when cookies
//! fail too. The queue goes to localStorage only (a cookie would grow), under a per-tab key
//! (`ff_q.<tab>`, the tab id kept in sessionStorage so a reload finds its queue).
const STATE_KEY = 'ff_id';
export const QUEUE_PREFIX = 'ff_q.';
const TAB_KEY = 'ff_tab';
const LS = 0;
const COOKIE = 1;
const MEMORY = 2;

const newTabId = () => ((Math.random() * 2 ** 32) >>> 0).toString(16).padStart(8, '0');

/** This tab's id from sessionStorage (kept across reloads), or a new one. */
export function tabId() {
  let ss;
  try {
    ss = sessionStorage;
    const id = ss.getItem(TAB_KEY);
    if (id && /^[0-9a-zA-Z]{1,16}$/.test(id)) return id;
  } catch {
    ss = null;
  }
  const id = newTabId();
  try {
    ss && ss.setItem(TAB_KEY, id);
  } catch {
    /* no sessionStorage: a reload gets a new queue key; the old one is adopted when stale */
  }
  return id;
}

function cookie(line) {
  try {
    document.cookie = line;
    return true;
  } catch {
    return false;
  }
}

function cookieValue(name) {
  try {
    for (const part of String(document.cookie).split(';')) {
      const p = part.trimStart();
      if (p.startsWith(name + '=')) return p.slice(name.length + 1);
    }
  } catch {
    /* cookies blocked */
  }
  return null;
}

/**
 * Opens storage as asked ('localStorage' | 'cookie' | 'memory'), falling back as needed.
 * `tab` (empty under a privacy signal or with 'memory': no queue is stored) makes the queue key.
 */
export function openStore(persistence, cookieDomain, tab, secure) {
  let ls = null;
  if (persistence !== 'memory') {
    try {
      // Probe: Safari private mode and full quotas only fail on write.
      ls = localStorage;
      ls.setItem('ff_probe', '1');
      ls.removeItem('ff_probe');
    } catch {
      ls = null;
    }
  }
  const attrs =
    '; Max-Age=31536000; Path=/; SameSite=Lax' + (secure ? '; Secure' : '') + (cookieDomain ? '; Domain=' + cookieDomain : '');
  let mode = persistence === 'memory' ? MEMORY : persistence === 'cookie' ? COOKIE : LS;
  if (mode === LS && !ls) mode = COOKIE;
  if (mode === COOKIE) {
    const base = '; Path=/; SameSite=Lax' + (secure ? '; Secure' : '');
    const ok = cookie('ff_probe=1; Max-Age=10' + base) && cookieValue('ff_probe') != null;
    cookie('ff_probe=; Max-Age=0; Path=/; SameSite=Lax');
    if (!ok) mode = MEMORY;
  }
  const store = {
    attrs,
    queueKey: QUEUE_PREFIX + tab,
    get mode() {
      return ['localStorage', 'cookie', 'memory'][mode];
    },
    /** The stored state string, read fresh (another tab may have written it), or null. */
    read() {
      try {
        if (mode === LS) return ls.getItem(STATE_KEY);
        if (mode === COOKIE) {
          const v = cookieValue(STATE_KEY);
          return v == null ? null : decodeURIComponent(v);
        }
      } catch {
        /* unreadable: the wasm starts fresh */
      }
      return null;
    },
    /** Writes the state; on failure falls back (localStorage → cookie → memory). */
    writeState(raw) {
      if (mode === LS) {
        try {
          ls.setItem(STATE_KEY, raw);
          return true;
        } catch {
          mode = COOKIE;
        }
      }
      if (mode === COOKIE) {
        if (cookie(STATE_KEY + '=' + encodeURIComponent(raw) + attrs)) return true;
        mode = MEMORY;
        return false;
      }
      return true;
    },
    /** Writes this tab's queue ('' removes it); false when the browser refused (quota). */
    writeQueue(raw) {
      if (!ls || !tab) return true;
      try {
        if (raw) ls.setItem(store.queueKey, raw);
        else ls.removeItem(store.queueKey);
        return true;
      } catch {
        return false;
      }
    },
    /** Every stored queue, as [key, value] (ours and other tabs'). */
    queues() {
      const out = [];
      try {
        for (let i = 0; i < ls.length; i++) {
          const k = ls.key(i);
          if (k && k.startsWith(QUEUE_PREFIX)) out.push([k, ls.getItem(k)]);
        }
      } catch {
        /* no localStorage */
      }
      return out;
    },
    remove(key) {
      try {
        ls.removeItem(key);
      } catch {
        /* nothing to remove */
      }
    },
    /** Our own key is held by a live twin (a duplicated tab copies sessionStorage): take a new one. */
    newKey() {
      store.queueKey = QUEUE_PREFIX + newTabId();
    },
  };
  return store;
}
