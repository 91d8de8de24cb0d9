//! What we read about the page and the browser for `context`, serialized here as JSON (the wasm
//! splices it into messages). The page is read at start, on navigation and on explicit page()
//! calls, never per track(); the page-independent part once at start. Every read survives a
//! hostile getter.
import { clip, json } from './json.js';

/** `context.library.version`: the npm package's version (tests/sdk.e2e.test.mjs checks they match). */
const VERSION = '0.1.0';

const str = (f) => {
  try {
    const v = f();
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
};

// utm_<k> → context.campaign.<k> (Segment Spec; utm_campaign → `name`), in the sorted key order
// the ingest writes (content, medium, name, source, term).
const UTM = ['content', 'medium', 'campaign', 'source', 'term'];

/**
 * [context.page JSON, route (path + query), context.campaign JSON or "" when the URL has no
 * utm_* parameter]. Campaign values are decoded by the browser (first occurrence wins) and cut
 * to 200 characters: a hostile URL must not bloat every message of the page. Which campaign
 * starts a new session is the wasm's rule (core/campaign.rs).
 */
export function page() {
  const path = str(() => location.pathname);
  const search = str(() => location.search);
  let q;
  try {
    q = new URLSearchParams(search);
  } catch {
    q = new URLSearchParams();
  }
  const c = {};
  let any = false;
  for (const k of UTM) {
    if (q.has('utm_' + k)) {
      c[k === 'campaign' ? 'name' : k] = clip(q.get('utm_' + k), 200);
      any = true;
    }
  }
  return [
    json({ path, referrer: str(() => document.referrer), search, title: str(() => document.title), url: str(() => location.href) }),
    path + search,
    any ? json(c) : '',
  ];
}

const num = (f) => {
  try {
    const v = f();
    return typeof v === 'number' && isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
};

let commonRead;
/**
 * The batch-level context JSON (library, userAgent, locale, timezone, screen); read once.
 * The timezone comes from `Temporal.Now.timeZoneId()` where there is one (0.5 ms on a cold page):
 * the first `Intl.DateTimeFormat` of a page builds ICU's formatter (30-35 ms measured in Chromium
 * 156, on the main thread, before ready); both give the same IANA id. Without Temporal, init()
 * calls this while the wasm downloads, so the two overlap.
 */
export function common() {
  // Keys in sorted order, as the ingest writes them: a body already in its canonical form is
  // spliced to disk without being re-encoded.
  return (commonRead ||= json({
    library: { name: 'footfall', version: VERSION },
    locale: str(() => navigator.language),
    screen: { density: num(() => devicePixelRatio) || 1, height: num(() => screen.height), width: num(() => screen.width) },
    timezone: str(() => str(() => Temporal.Now.timeZoneId()) || Intl.DateTimeFormat().resolvedOptions().timeZone),
    userAgent: str(() => navigator.userAgent),
  }));
}

/** Do Not Track or Global Privacy Control is on. */
export function privacySignal() {
  const dnt = (f) => ['1', 'yes'].includes(str(f));
  let gpc = false;
  try {
    gpc = !!navigator.globalPrivacyControl;
  } catch {
    /* unreadable: no signal */
  }
  return dnt(() => navigator.doNotTrack) || dnt(() => window.doNotTrack) || gpc;
}
