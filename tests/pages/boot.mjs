//! Boots the Footfall SDK on a test page from the page's query string, so one page serves every
//! e2e scenario. Exposes `window.ff` (the tracker), `window.ffReady` (a promise of it) and
//! `window.footfallInit` (the raw `init`, for argument-validation tests).
//!
//! Query parameters: writeKey, apiHost, persistence, cookieDomain, sessionTimeoutMinutes,
//! maxSessionHours, flushAt, flushIntervalMs, maxQueueSize, autocapture (`false`, `true`, or JSON
//! such as `{"pageviews":true,"clicks":false}`), respectPrivacySignals, debug, and `opts` (a JSON
//! object merged last). `noinit=1` loads the SDK without calling init. Only parameters present in
//! the URL are passed, so the SDK's own defaults apply otherwise. `utm_*` and other parameters are
//! left alone for the SDK to read.
import { init } from '/pkg/index.js';

const q = new URLSearchParams(location.search);
const NUMBERS = ['sessionTimeoutMinutes', 'maxSessionHours', 'flushAt', 'flushIntervalMs', 'maxQueueSize'];
const STRINGS = ['writeKey', 'apiHost', 'persistence', 'cookieDomain'];
const BOOLEANS = ['respectPrivacySignals', 'debug'];

function optionsFromQuery() {
  const options = {};
  for (const k of STRINGS) if (q.has(k)) options[k] = q.get(k);
  for (const k of NUMBERS) if (q.has(k)) options[k] = Number(q.get(k));
  for (const k of BOOLEANS) if (q.has(k)) options[k] = q.get(k) === 'true' || q.get(k) === '1';
  if (q.has('autocapture')) options.autocapture = JSON.parse(q.get('autocapture'));
  if (q.has('opts')) Object.assign(options, JSON.parse(q.get('opts')));
  return options;
}

window.footfallInit = init;
window.ffOptions = optionsFromQuery();
if (q.get('noinit') !== '1') {
  window.ffReady = init(window.ffOptions).then(
    (ff) => {
      window.ff = ff;
      return ff;
    },
    (e) => {
      // Surface init failures to the test instead of leaving window.ff undefined forever.
      window.ffInitError = `${e && e.name}: ${e && e.message}`;
      throw e;
    },
  );
}
