//! Script-tag build of Footfall (dist/footfall.js, a classic IIFE script).
//! Owns: reading the options from the tag's data-* attributes, defining `window.footfall`,
//! picking up the snippet's pre-load queue (whether this script runs before or after the
//! snippet) and replaying it in order with each call's original timestamp and page context.
import { init } from 'footfall-sdk-pkg';
import { footfallScriptElement as el } from './script-url.js';

const w = window;
const d = document;
// Methods queued until the SDK is ready and replayed in call order; the last two (flush, ready)
// return a promise that settles then.
const QUEUED = 'track page identify reset optOut optIn flush ready'.split(' ');
// Getters answer `undefined` until the SDK is ready: there is no id to give yet.
const GETTERS = ['sessionId', 'anonymousId', 'userId'];
// data-* attributes read from the tag (`el.dataset` turns data-write-key into writeKey), by
// type: strings, numbers, booleans ("false" is false, anything else, even empty, true).
const OPTIONS = [
  'writeKey apiHost persistence cookieDomain',
  'sessionTimeoutMinutes maxSessionHours flushAt flushIntervalMs maxQueueSize',
  'respectPrivacySignals debug',
];
const AS = [String, Number, (v) => v !== 'false'];

/** Options for init() from the tag's data-* attributes; unset attributes keep the SDK defaults. */
function optionsFromTag(ds) {
  const o = {};
  OPTIONS.forEach((names, t) => {
    for (const k of names.split(' ')) if (ds[k] != null && (t > 1 || ds[k] !== '')) o[k] = AS[t](ds[k]);
  });
  const a = ds.autocapture;
  if (a && a !== 'true') {
    // "false" turns autocapture off; "pageviews" or "clicks" (comma separated) keeps only those.
    const on = a === 'false' ? [] : a.split(/[\s,]+/);
    o.autocapture = on.length > 0 && { pageviews: on.includes('pageviews'), clicks: on.includes('clicks') };
  }
  return o;
}

/** Replays one queued call [method, args, time, page] on the ready tracker. */
function replay(tracker, [method, list, time, page]) {
  const args = Array.from(list || []);
  if (method === 'ready') return args[0] && args[0](tracker);
  if (!(method in tracker)) return;
  // track(name, properties, options), page(name, properties, options), identify(id, traits,
  // options): the caller's own options win; the call's time and page fill what they leave out.
  if (QUEUED.indexOf(method) < 3 && time) {
    const own = args[2] || {};
    args[2] = { timestamp: time, ...own, context: { ...own.context, page: (own.context && own.context.page) || page } };
  }
  return tracker[method](...args);
}

function main() {
  let ff = w.footfall;
  // A second copy of this script (e.g. a tag plus the snippet): the first one owns `footfall`.
  if (ff && ff.__footfall) return;
  if (!ff || typeof ff !== 'object') ff = w.footfall = {};
  const q = Array.isArray(ff.q) ? ff.q : (ff.q = []);
  ff.__footfall = true;
  // Until ready, queue like the snippet does (its items carry `resolve` too, so a queue taken
  // over from it settles its callers' promises below).
  QUEUED.forEach((m, i) => {
    ff[m] = (...args) => {
      const l = location;
      const item = [m, args, Date.now(), { path: l.pathname, referrer: d.referrer, search: l.search, title: d.title, url: l.href }];
      q.push(item);
      if (i > 5) return new Promise((resolve) => (item.resolve = resolve));
    };
  });
  for (const m of GETTERS) ff[m] = () => undefined;

  let options;
  try {
    options = optionsFromTag((el && el.dataset) || {});
  } catch (e) {
    options = {};
  }
  init(options).then(
    (tracker) => {
      // Replay synchronously: no page call can interleave with the queued ones.
      for (const item of q.splice(0)) {
        let r;
        try {
          r = replay(tracker, item);
        } catch (e) {
          console.error('footfall: queued', item[0], 'call failed:', e);
        }
        if (item.resolve) item.resolve(item[0] === 'ready' ? tracker : r);
      }
      for (const m of QUEUED.concat(GETTERS)) if (m in tracker) ff[m] = tracker[m].bind(tracker);
      // Resolves with the tracker, as a queued ready() does (index.d.ts: Promise<Tracker>).
      ff.ready = (cb) => (cb && cb(tracker), Promise.resolve(tracker));
      ff.loaded = true;
      try {
        performance.mark('footfall:ready');
      } catch (e) {
        /* old browsers without User Timing */
      }
      w.dispatchEvent(new Event('footfall:ready'));
    },
    (e) => {
      console.error('footfall: init failed:', e);
      // No tracker will replay the queue. flush() promises resolve (nothing will be sent: a page
      // awaiting one must not hang); ready() stays pending and its callbacks are never called,
      // since the SDK never becomes ready (a rejection would be an unhandled error in every page
      // that passes a callback). Later calls are dropped, not queued.
      for (const item of q.splice(0)) if (item[0] === 'flush' && item.resolve) item.resolve();
      QUEUED.forEach((m, i) => (ff[m] = () => (i > 5 ? new Promise((r) => i < 7 && r()) : undefined)));
    },
  );
}

main();
