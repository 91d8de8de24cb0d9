//! Boots the Footfall SDK for the hostile-page suite: `opts` (JSON) from the query string are
//! passed to `init` as they are; `noinit=1` loads the SDK without calling init (the test then
//! breaks the page and calls `window.footfallInit` itself). Unlike boot.mjs, an init failure is
//! recorded (`window.ffInitError`) and NOT rethrown: every uncaught error or unhandled rejection
//! the test sees must then come from the SDK, not from this page.
import { init } from '/pkg/index.js';

const q = new URLSearchParams(location.search);
window.footfallInit = init;
window.ffOptions = JSON.parse(q.get('opts') || '{}');
if (q.get('noinit') !== '1') {
  window.ffReady = init(window.ffOptions).then(
    (ff) => {
      window.ff = ff;
      return ff;
    },
    (e) => {
      window.ffInitError = `${e && e.name}: ${e && e.message}`;
    },
  );
}
