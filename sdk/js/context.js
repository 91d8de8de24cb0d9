//! What we read about the page and the browser for `context` (the wasm formats it). The page is
//! read at start, on navigation and on explicit page() calls, never per track(); the
//! page-independent part once at start. Every read survives a hostile getter.

const str = (f) => {
  try {
    const v = f();
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
};

const UTM = ['campaign', 'source', 'medium', 'term', 'content'];

/**
 * path, referrer, search, title, url, then the five utm values decoded by the browser, each ""
 * when absent or "=value" (first occurrence wins; the wasm turns them into context.campaign and
 * the session's campaign key).
 */
export function page() {
  const search = str(() => location.search);
  let q;
  try {
    q = new URLSearchParams(search);
  } catch {
    q = new URLSearchParams();
  }
  return [
    str(() => location.pathname),
    str(() => document.referrer),
    search,
    str(() => document.title),
    str(() => location.href),
    ...UTM.map((k) => (q.has('utm_' + k) ? '=' + q.get('utm_' + k) : '')),
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
 * userAgent, locale, timezone, density (printed by the browser) and the screen size; read once.
 * The first `Intl` call of a page loads the browser's ICU data (18–29 ms measured here), so
 * init() calls this before it waits for the wasm: the two overlap.
 */
export function common() {
  return (commonRead ||= {
    s: [
      str(() => navigator.userAgent),
      str(() => navigator.language),
      str(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
      str(() => (typeof devicePixelRatio === 'number' ? String(devicePixelRatio) : '1')),
    ],
    w: num(() => screen.width),
    h: num(() => screen.height),
  });
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
