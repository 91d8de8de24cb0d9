//! Footfall copy-paste snippet (source; the build writes the minified copy to dist/snippet.min.js).
//! It defines a stub `window.footfall` before the SDK is loaded: every call is queued as
//! `[method, args, Date.now(), page]`, so footfall.js can replay it later with its original time and
//! page (flush() and ready() return a Promise footfall.js settles then), then injects footfall.js
//! (async) with the options as data-* attributes, and a preload of the wasm it will fetch.
// Edit the last line: the URL of footfall.js, then the options (writeKey, apiHost, … as for init()).
(function (w, d, src, opts) {
  // The real SDK (or another copy of this snippet) is already here: leave it alone.
  if (w.footfall) return;
  var ff = (w.footfall = { q: [] });
  // flush and ready last: `i > 5` picks them out in fewer bytes than comparing names.
  'track page identify reset optOut optIn flush ready'.split(' ').forEach(function (m, i) {
    ff[m] = function () {
      var l = location;
      var c = [m, [].slice.call(arguments), Date.now(),
        { url: l.href, path: l.pathname, referrer: d.referrer, title: d.title, search: l.search }];
      ff.q.push(c);
      // flush() and ready() promise a Promise (index.d.ts): footfall.js settles it with what the
      // real method gives when it replays this call (c.resolve, as its own pre-load stub does).
      if (i > 5) return new Promise(function (r) { c.resolve = r; });
    };
  });
  var s = d.createElement('script');
  s.async = true;
  s.src = src;
  // Start the wasm's download now, beside footfall.js's, rather than once footfall.js has arrived
  // and run. footfall.js fetches footfall_bg.wasm from next to itself in CORS mode, which a
  // crossorigin (anonymous) preload of the same URL matches: the file is downloaded once.
  var p = d.createElement('link');
  p.rel = 'preload';
  p.as = 'fetch';
  p.crossOrigin = '';
  p.href = new URL('footfall_bg.wasm', s.src);
  // dataset.writeKey becomes data-write-key: footfall.js reads its options back from these.
  for (var k in opts) s.dataset[k] = opts[k];
  d.head.append(p, s);
})(window, document, '/footfall.js', { writeKey: 'YOUR_WRITE_KEY', apiHost: 'https://ingest.example.com' });
