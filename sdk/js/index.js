//! Footfall SDK entry (ES module): `init(options)` loads the wasm next to this file and resolves
//! to the tracker of issue 3.
//!
//! The adapter owns the per-call argument work, because it is JavaScript's to do cheaply: type
//! checks (the documented TypeErrors, message starting with "footfall:") and JSON.stringify of
//! properties/traits/options.context, then one call into the wasm with two strings. Done from Rust
//! it took ~15 JS↔wasm crossings per track() (6 µs); the budget is 2 µs. Everything the wasm does
//! is guarded: nothing but our TypeErrors can reach the page.
import load, { Tracker } from './footfall_sdk.js';

let loading;
let tracker;

const fail = (msg) => new TypeError('footfall: ' + msg);

/** `{}` literals and Object.create(null), from any realm; not arrays, dates, class instances. */
function plain(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === null || Object.getPrototypeOf(p) === null;
}

/** JSON for a plain object; cycles and BigInts get a second, forgiving pass; `{}` if all fails. */
function json(v) {
  try {
    return JSON.stringify(v);
  } catch {
    const seen = new WeakSet();
    try {
      return JSON.stringify(v, (k, x) =>
        typeof x === 'bigint' ? String(x) : x && typeof x === 'object' ? (seen.has(x) ? '[Circular]' : (seen.add(x), x)) : x,
      );
    } catch {
      return '{}';
    }
  }
}

function payload(v, what) {
  if (v == null) return '{}';
  if (!plain(v)) throw fail(what + ' must be a plain object');
  return json(v);
}

export async function init(options) {
  loading =
    loading ||
    load({ module_or_path: new URL('./footfall_sdk_bg.wasm', import.meta.url) }).catch((e) => {
      loading = undefined; // let a later init() retry the download
      throw e;
    });
  await loading;
  // One tracker per page: it owns the page's listeners, history patch and queue.
  if (tracker) return tracker;
  const t = new Tracker(options);
  const debug = !!(options && options.debug);
  const guard = (f, fallback) => {
    try {
      return f();
    } catch (e) {
      if (debug) console.warn('footfall:', e);
      return fallback;
    }
  };
  // kind: 0 track, 1 page, 2 identify. Segment-style options: timestamp, context.
  const send = (kind, name, body, o) => {
    let ts = NaN;
    let ctx = '';
    let skip = 0;
    if (o !== null && typeof o === 'object') {
      const s = o.timestamp;
      ts = s instanceof Date ? s.getTime() : typeof s === 'string' ? Date.parse(s) : typeof s === 'number' ? s : NaN;
      const c = o.context;
      if (plain(c)) {
        ctx = json(c);
        skip = ('page' in c ? 1 : 0) | ('campaign' in c ? 2 : 0) | ('sessionId' in c ? 4 : 0) | ('sessionStart' in c ? 8 : 0);
      }
    }
    guard(() => t._e(kind, name, body, ts, ctx, skip));
  };
  tracker = Object.freeze({
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
    reset: () => guard(() => t.reset()),
    flush: () => guard(() => t.flush(), Promise.resolve()),
    optOut: () => guard(() => t.optOut()),
    optIn: () => guard(() => t.optIn()),
    sessionId: () => guard(() => t.sessionId()),
    anonymousId: () => guard(() => t.anonymousId()),
    userId: () => guard(() => t.userId()),
  });
  return tracker;
}

export default init;
