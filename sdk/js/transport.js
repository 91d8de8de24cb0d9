//! The network edge: the page's current `fetch` (POST, text/plain string body: no CORS
//! preflight; keepalive when the wasm asks) and `navigator.sendBeacon`. What an answer means is
//! decided in the wasm (core/backoff.rs); this only reports the status and `Retry-After`.
//! A page that replaced or broke fetch/sendBeacon gets a network error, never an exception.

/**
 * Starts the request; `done(status, retryAfter, dateMs)` later (status 0: network error).
 * Returns false when it could not even start.
 */
export function post(url, body, keepalive, done) {
  let p;
  try {
    p = fetch(url, keepalive ? { method: 'POST', body, keepalive: true } : { method: 'POST', body });
  } catch {
    return false;
  }
  if (!(p instanceof Promise)) return false;
  p.then(
    (r) => {
      let status = 0;
      let ra = '';
      try {
        if (r instanceof Response) {
          status = r.status;
          ra = r.headers.get('retry-after') || '';
        }
      } catch {
        status = 0;
      }
      done(status, ra, ra ? Date.parse(ra) - Date.now() : NaN);
    },
    () => done(0, '', NaN),
  );
  return true;
}

/** `navigator.sendBeacon(url, body)`; false when refused or broken. */
export function beacon(url, body) {
  try {
    return navigator.sendBeacon(url, body) === true;
  } catch {
    return false;
  }
}
