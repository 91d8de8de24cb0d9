//! The options of issue 3: checked (a TypeError naming the option, message starting with
//! "footfall:") and converted to what the wasm and the edges take; defaults filled in.

export const fail = (msg) => new TypeError('footfall: ' + msg);

/** `{}` literals and Object.create(null), from any realm; not arrays, dates, class instances. */
export function plain(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === null || Object.getPrototypeOf(p) === null;
}

const OPTIONS = 'writeKey apiHost persistence cookieDomain sessionTimeoutMinutes maxSessionHours flushAt flushIntervalMs maxQueueSize autocapture respectPrivacySignals debug'.split(' ');

/** The options of issue 3, checked; defaults filled in. */
export function parse(o) {
  if (!plain(o)) throw fail('options must be an object with a writeKey');
  for (const k of Object.keys(o)) if (!OPTIONS.includes(k)) throw fail(`unknown option '${k}'`);
  const str = (k) => {
    const v = o[k];
    if (v !== undefined && typeof v !== 'string') throw fail(k + ' must be a string');
    return v;
  };
  const bool = (obj, k, d) => {
    const v = obj[k];
    if (v === undefined) return d;
    if (typeof v !== 'boolean') throw fail(k + ' must be a boolean');
    return v;
  };
  const num = (k, d, min) => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'number' || !isFinite(v) || v < min) throw fail(`${k} must be a number ≥ ${min}`);
    return v;
  };
  const writeKey = str('writeKey');
  if (!writeKey) throw fail('writeKey is required (a non-empty string)');
  let host = str('apiHost') || location.origin;
  while (host.endsWith('/')) host = host.slice(0, -1);
  const persistence = str('persistence') || 'localStorage';
  if (!['localStorage', 'cookie', 'memory'].includes(persistence)) {
    throw fail("persistence must be 'localStorage', 'cookie' or 'memory'");
  }
  let a = o.autocapture;
  let pageviews = true;
  let clicks = true;
  if (typeof a === 'boolean') pageviews = clicks = a;
  else if (plain(a)) {
    for (const k of Object.keys(a)) if (k !== 'pageviews' && k !== 'clicks') throw fail(`unknown option 'autocapture.${k}'`);
    pageviews = bool(a, 'pageviews', true);
    clicks = bool(a, 'clicks', true);
  } else if (a !== undefined) throw fail('autocapture must be a boolean or { pageviews, clicks }');
  return {
    writeKey,
    url: host + '/v1/batch',
    persistence,
    cookieDomain: str('cookieDomain') || '',
    // Fractions count (a 0.5-minute timeout is handy in tests).
    idle: num('sessionTimeoutMinutes', 30, 0) * 60000,
    max: num('maxSessionHours', 24, 0) * 3600000,
    flushAt: num('flushAt', 20, 1),
    interval: Math.min(num('flushIntervalMs', 5000, 0), 2147483647),
    maxQueue: num('maxQueueSize', 1000, 1),
    pageviews,
    clicks,
    respect: bool(o, 'respectPrivacySignals', true),
    debug: bool(o, 'debug', false),
  };
}

