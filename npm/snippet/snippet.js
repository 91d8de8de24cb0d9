//! Footfall copy-paste snippet (source; the build writes the minified copy to dist/snippet.min.js).
//! It defines a stub `window.footfall` before the SDK is loaded: every call is queued as
//! `[method, args, Date.now(), page]`, so footfall.js can replay it later with its original time and
//! page, then injects footfall.js (async) with the options as data-* attributes.
// Edit the last line: the URL of footfall.js, then the options (writeKey, apiHost, … as for init()).
(function (w, d, src, opts) {
  // The real SDK (or another copy of this snippet) is already here: leave it alone.
  if (w.footfall) return;
  var ff = (w.footfall = { q: [] });
  'track page identify reset flush optOut optIn ready'.split(' ').forEach(function (m) {
    ff[m] = function () {
      var l = location;
      ff.q.push([m, [].slice.call(arguments), Date.now(),
        { url: l.href, path: l.pathname, referrer: d.referrer, title: d.title, search: l.search }]);
    };
  });
  var s = d.createElement('script');
  s.async = true;
  s.src = src;
  // dataset.writeKey becomes data-write-key: footfall.js reads its options back from these.
  for (var k in opts) s.dataset[k] = opts[k];
  d.head.appendChild(s);
})(window, document, '/footfall.js', { writeKey: 'YOUR_WRITE_KEY', apiHost: 'https://ingest.example.com' });
