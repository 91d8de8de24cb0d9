//! Script-tag build of Footfall (dist/footfall.js, a classic IIFE script).
//! Owns: reading the options from the tag's data-* attributes, defining `window.footfall`,
//! picking up the snippet's pre-load queue (whether this script runs before or after the
//! snippet) and replaying it in order with each call's original timestamp and page context.
import { init } from 'footfall-sdk-pkg';
import { footfallScriptElement as el } from './script-url.js';

const w = window;
const d = document;
// Methods that are queued until the SDK is ready (and replayed in call order).
const QUEUED = ['track', 'page', 'identify', 'reset', 'flush', 'optOut', 'optIn', 'ready'];
// Getters answer `undefined` until the SDK is ready: there is no id to give yet.
const GETTERS = ['sessionId', 'anonymousId', 'userId'];
// Argument index of the Segment-style `options` object of each event method.
const OPTIONS_ARG = { track: 2, page: 2, identify: 2 };
// data-* attributes read from the tag; `el.dataset` turns data-write-key into writeKey.
const STRING_OPTIONS = ['writeKey', 'apiHost', 'persistence', 'cookieDomain'];
const NUMBER_OPTIONS = ['sessionTimeoutMinutes', 'maxSessionHours', 'flushAt', 'flushIntervalMs', 'maxQueueSize'];
const BOOLEAN_OPTIONS = ['respectPrivacySignals', 'debug'];

function pageContext() {
  const l = location;
  return { url: l.href, path: l.pathname, referrer: d.referrer, title: d.title, search: l.search };
}

/** Options for init() from the tag's data-* attributes; unset attributes keep the SDK defaults. */
function optionsFromTag(ds) {
  const o = {};
  for (const k of STRING_OPTIONS) if (ds[k] != null && ds[k] !== '') o[k] = ds[k];
  for (const k of NUMBER_OPTIONS) if (ds[k] != null && ds[k] !== '') o[k] = Number(ds[k]);
  // `data-debug` alone (empty value) means true; "false" means false.
  for (const k of BOOLEAN_OPTIONS) if (ds[k] != null) o[k] = ds[k] !== 'false';
  const a = ds.autocapture;
  if (a != null && a !== '' && a !== 'true') {
    // "false" turns autocapture off; "pageviews" or "clicks" (comma separated) keeps only those.
    const on = a === 'false' ? [] : a.split(/[\s,]+/);
    o.autocapture = on.length ? { pageviews: on.includes('pageviews'), clicks: on.includes('clicks') } : false;
  }
  return o;
}

/** Replays one queued call on the ready tracker with its original time and page. */
function replay(tracker, item) {
  const method = item[0];
  const time = item[2];
  const page = item[3];
  const args = Array.from(item[1] || []);
  if (method === 'ready') return args[0] && args[0](tracker);
  if (!(method in tracker)) return;
  const i = OPTIONS_ARG[method];
  if (i !== undefined && time) {
    // The caller's own options win; the queued call time and page fill what they leave out.
    const own = args[i] || {};
    const context = { ...own.context, page: (own.context && own.context.page) || page };
    args[i] = { timestamp: time, ...own, context };
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
  // Until ready, queue like the snippet does; flush() and ready() get a promise that settles later.
  // The snippet's stub does the same (its items carry `resolve` too), so a queue taken over from
  // it settles its callers' promises below.
  for (const m of QUEUED) {
    ff[m] = (...args) => {
      const item = [m, args, Date.now(), pageContext()];
      if (m !== 'flush' && m !== 'ready') return void q.push(item);
      return new Promise((resolve) => {
        q.push(item);
        item.resolve = resolve;
      });
    };
  }
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
      for (const m of QUEUED.concat(GETTERS)) {
        if (m in tracker) ff[m] = tracker[m].bind(tracker);
      }
      // Resolves with the tracker, as a queued ready() does (index.d.ts: Promise<Tracker>).
      ff.ready = (cb) => {
        if (cb) cb(tracker);
        return Promise.resolve(tracker);
      };
      ff.loaded = true;
      try {
        performance.mark('footfall:ready');
      } catch (e) {
        /* old browsers without User Timing */
      }
      w.dispatchEvent(new Event('footfall:ready'));
    },
    (e) => console.error('footfall: init failed:', e),
  );
}

main();
