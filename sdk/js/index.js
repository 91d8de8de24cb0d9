//! Footfall SDK entry (ES module): `init(options)` loads the wasm next to this file and resolves
//! to the tracker. A few lines adapt the wasm-bindgen `Tracker` to the documented API: each
//! method is guarded so that nothing but our documented `TypeError`s (wrong arguments, message
//! starting with "footfall:") can ever reach the page.
import load, { Tracker } from './footfall_sdk.js';

const METHODS = ['track', 'page', 'identify', 'reset', 'flush', 'optOut', 'optIn', 'sessionId', 'anonymousId', 'userId'];
let loading;
let tracker;

export async function init(options) {
  loading = loading || load({ module_or_path: new URL('./footfall_sdk_bg.wasm', import.meta.url) }).catch((e) => {
    loading = undefined; // let a later init() retry the download
    throw e;
  });
  await loading;
  // One tracker per page: it owns the page's listeners, history patch and queue.
  if (tracker) return tracker;
  const t = new Tracker(options);
  const debug = !!(options && options.debug);
  const api = {};
  for (const m of METHODS) {
    api[m] = (a, b, c) => {
      try {
        return t[m](a, b, c);
      } catch (e) {
        if (e instanceof TypeError && String(e.message).startsWith('footfall:')) throw e;
        if (debug) console.warn('footfall:', e);
        return m === 'flush' ? Promise.resolve() : undefined;
      }
    };
  }
  return (tracker = Object.freeze(api));
}

export default init;
