//! Footfall SDK entry (ES module): `init(options)` resolves to the tracker of issue 3.
//!
//! This adapter owns what is JavaScript's to do cheaply: checking options and call arguments
//! (the documented TypeErrors, message starting with "footfall:"), JSON.stringify of
//! properties/traits/options.context (json.js), and wiring the edges (options.js, storage.js,
//! transport.js, context.js, autocapture.js) to the wasm, which holds every rule (core/machine.rs). One wasm
//! call per track(). Nothing but our TypeErrors reaches the page.
import { instantiate, fillRandom, iso, write } from './wasm.js';
import { openStore, tabId } from './storage.js';
import { post, beacon } from './transport.js';
import { page, common, privacySignal } from './context.js';
import { click, patchHistory } from './autocapture.js';
import { parse, plain, fail } from './options.js';
import { json } from './json.js';

let tracker;
let pending;

function payload(v, what) {
  if (v == null) return '{}';
  let ok;
  try {
    ok = plain(v);
  } catch {
    // A Proxy whose getPrototypeOf trap throws: unreadable, so sent as `{}` like a throwing getter.
    return '{}';
  }
  if (!ok) throw fail(what + ' must be a plain object');
  return json(v);
}

/**
 * A stored queue with every message line checked: the lines are spliced raw into a batch body,
 * so one that only looks like JSON (a torn write ending in `}`) would make the ingest refuse the
 * whole body. Each line is parsed and serialized again (lone surrogates, depth: as json()); lines
 * that do not parse are dropped. The header and every decision stay the wasm's.
 */
function checked(raw) {
  const [head, ...lines] = String(raw || '').split('\n');
  const out = [head];
  for (const l of lines) {
    try {
      out.push(json(JSON.parse(l)));
    } catch {
      // not JSON: dropped
    }
  }
  return out.join('\n');
}

// Warnings by code (core/machine.rs WARN_*), printed with `debug`.
const WARNINGS = [
  '',
  'event over 30 KB dropped',
  'storage failed; ids in memory',
  'queue over quota; kept the newest part',
  'write key or origin refused (401/403); batch dropped',
  'batch rejected for good',
  'send failed; will retry',
  'sendBeacon refused; events stay queued',
];

async function create(options) {
  const c = parse(options);
  common(); // slow on first use without Temporal (Intl): done while the wasm downloads
  const disabled = c.respect && privacySignal();
  // Under a privacy signal, and with persistence 'memory', nothing touches storage, not even the
  // tab id in sessionStorage (an empty tab stores no queue).
  const memory = disabled || c.persistence === 'memory';
  const store = openStore(memory ? 'memory' : c.persistence, c.cookieDomain, memory ? '' : tabId(), location.protocol === 'https:');
  const warn = (m) => c.debug && console.warn('footfall:', m);
  const timers = [];
  const waiters = new Map();
  let stored = null;
  // Every import is guarded: an exception must never unwind through the wasm.
  const safe =
    (f, d = 0) =>
    (...a) => {
      try {
        return f(...a);
      } catch (e) {
        warn(e);
        return d;
      }
    };
  let b; // the bridge, once instantiated
  // Calls not yet handed to the wasm: [kind, name, body, ts, ctx, skip, at, page].
  let calls = [];
  let scheduled = false;
  const soon = () => scheduled || ((scheduled = true), queueMicrotask(drain));
  const drain = () => {
    scheduled = false;
    // Inside a wasm call (a page callback re-entering us): drained right after it returns.
    if (!b.x.b(0)) return soon(); // ff_buf
    while (calls.length) {
      const q = calls;
      calls = [];
      for (const e of q) {
        try {
          const m = b.put(e[7] ? [e[1], e[2], e[4], ...e[7]] : [e[1], e[2], e[4]]);
          if (m >= 0) b.x.e(m, e[0], e[3], e[5], e[6]); // ff_event
        } catch (err) {
          warn(err);
        }
      }
    }
  };
  // Inside a wasm call a command cannot run: it runs right after that call returns (-1 now; a
  // getter, which cannot wait, answers '').
  const cmd = (op, arg = 0) => {
    drain();
    if (b.x.b(0)) return b.x.c(op, arg); // ff_cmd
    if (op > 8) return 0;
    queueMicrotask(() => !(cmd(op, arg) % 2) && op == 2 && settle(arg));
    return -1;
  };
  const settle = (id) => {
    const r = waiters.get(id);
    waiters.delete(id);
    r && r();
  };
  // The wasm's imports, by their one-letter wire names (src/wasm.rs has the table): now, iso,
  // rand, load, take, save, send (POST), beacon, timer, micro(task), warn, settled.
  const env = {
    n: Date.now,
    i: safe((t, p) => write(b.view(), p, iso(t)) - p),
    r: safe((p, n) => fillRandom(b.view().subarray(p, p + n))),
    l: safe(() => {
      const s = store.read();
      stored = s == null ? null : b.enc.encode(s);
      return stored ? stored.length : -1;
    }, -1),
    t: safe((p) => b.view().set(stored, p)),
    s: safe((slot, p, n) => +(slot ? store.writeQueue(b.str(p, n)) : store.writeState(b.str(p, n)))),
    p: safe(
      (p, n, keepalive) =>
        +post(c.url, b.str(p, n), keepalive, (status, ra, dateMs) => {
          drain();
          const m = b.put([ra]);
          if (m >= 0) b.x.r(m, status, dateMs); // ff_answer
        }),
    ),
    b: safe((p, n) => +beacon(c.url, b.str(p, n))),
    m: safe((which, delay) => {
      clearTimeout(timers[which]);
      timers[which] = setTimeout(() => cmd(5, which), Math.min(delay, 2147483647));
    }),
    u: safe(() => queueMicrotask(() => cmd(5, 0))),
    w: safe((w) => warn(WARNINGS[w])),
    d: safe(settle),
  };
  b = await instantiate(env);
  const x = b.x;
  const n = b.put([json(c.writeKey), common(), ...page()]);
  // ff_init
  x.i(n, c.idle, c.max, c.flushAt, c.interval, c.maxQueue, (c.pageviews ? 1 : 0) | (disabled ? 2 : 0));
  if (!disabled) {
    // Stored queues: the wasm decides (adopt a gone tab's, leave a live one's, drop junk).
    const now = Date.now();
    for (const [k, raw] of store.queues()) {
      const m = b.put([checked(raw)]);
      const d = m < 0 ? 0 : x.q(m, now); // ff_adopt
      if (d) store.remove(k);
      else if (k === store.queueKey) store.newKey();
    }
  }
  // `safe` run at once: an API call that must not throw into the page.
  const guard = (f, fallback) => safe(f, fallback)();
  const nav = (force) =>
    guard(() => {
      drain();
      // Inside a wasm call (a history change from a page callback): right after it returns.
      if (!b.x.b(0)) return queueMicrotask(() => nav(force));
      const m = b.put(page());
      if (m >= 0) x.n(m, force); // ff_nav
    });
  // Notes a call (an explicit page() reads the page now: its title may change later).
  const event = (kind, name, body, ts, ctx, skip) => {
    calls.push([kind, name, body, ts, ctx, skip, Date.now(), kind === 1 && page()]);
    if (calls.length > c.maxQueue) guard(drain);
    else soon();
  };
  if (!disabled) {
    // One listener for every page event we need.
    const on = (e) =>
      guard(() => {
        switch (e.type) {
          case 'click':
            return click(e, (name, props) => event(0, name, props, NaN, '', 0));
          case 'popstate':
            return nav(0);
          case 'visibilitychange':
            return cmd(document.visibilityState === 'hidden' ? 6 : 7);
          case 'pagehide':
            return cmd(6);
          case 'pageshow':
            // Restored from the back-forward cache: that is a new pageview of this page.
            if (e.persisted) {
              cmd(7);
              nav(1);
            }
            return;
          case 'online':
            return cmd(8);
        }
      });
    document.addEventListener('visibilitychange', on);
    for (const t of ['pagehide', 'pageshow', 'online']) addEventListener(t, on);
    if (c.pageviews) {
      addEventListener('popstate', on);
      patchHistory(() => nav(0));
    }
    // Capture phase: a page that stops propagation does not hide its clicks from us.
    if (c.clicks) document.addEventListener('click', on, true);
  }
  cmd(0);
  // kind: 0 track, 1 page, 2 identify. Segment-style options: timestamp, context.
  const send = (kind, name, body, o) => {
    let ts = NaN;
    let ctx = '';
    let skip = 0;
    if (o !== null && typeof o === 'object') {
      // Options the page's getters or Proxy traps make unreadable are ignored (the event is kept).
      try {
        const s = o.timestamp;
        ts = s instanceof Date ? s.getTime() : typeof s === 'string' ? Date.parse(s) : typeof s === 'number' ? s : NaN;
      } catch {
        /* unreadable timestamp: now */
      }
      try {
        const cx = o.context;
        if (plain(cx)) {
          skip = ('page' in cx ? 1 : 0) | ('campaign' in cx ? 2 : 0) | ('sessionId' in cx ? 4 : 0) | ('sessionStart' in cx ? 8 : 0);
          ctx = json(cx);
        }
      } catch {
        /* unreadable context: ours only */
      }
    }
    event(kind, name, body, ts, ctx, skip);
  };
  const get = (op) =>
    guard(() => {
      const n = cmd(op); // first: it writes the answer that x.o() (ff_out) points at
      return b.str(x.o(), n);
    }, '');
  let ids = 0;
  return Object.freeze({
    track(event, properties, options) {
      if (typeof event !== 'string') throw fail('event must be a string (the event name)');
      send(0, event, payload(properties, 'properties'), options);
    },
    page(name, properties, options) {
      if (name != null && typeof name !== 'string') throw fail('page name must be a string');
      send(1, name || '', payload(properties, 'properties'), options);
    },
    identify(userId, traits, options) {
      if (typeof userId === 'number' && isFinite(userId)) userId = String(userId);
      if (typeof userId !== 'string') throw fail('userId must be a string');
      send(2, userId, payload(traits, 'traits'), options);
    },
    reset: () => guard(() => cmd(1)),
    flush: () =>
      guard(
        () =>
          new Promise((resolve) => {
            const id = ++ids;
            // 1: pending (settled later); -1: runs after the wasm call in progress (settled
            // then, or later); 0 (not started) or 2 (nothing pending): now.
            if (cmd(2, id) % 2) waiters.set(id, resolve);
            else resolve();
          }),
        Promise.resolve(),
      ),
    optOut: () => guard(() => cmd(3)),
    optIn: () => guard(() => cmd(4)),
    sessionId: () => get(9),
    anonymousId: () => get(10),
    userId: () => get(11) || undefined,
  });
}

export async function init(options) {
  // One tracker per page: it owns the page's listeners, history patch and queue.
  if (tracker) return tracker;
  // create() checks the options, reads the page and opens storage now, while the wasm downloads
  // and compiles (the fetch started at module evaluation); it waits for the wasm only to
  // instantiate it.
  pending = pending || create(options).finally(() => (pending = undefined));
  return (tracker = await pending);
}

export default init;
