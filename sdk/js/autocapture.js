//! Autocapture edges: SPA navigation (history patch + popstate, reported to the wasm, which
//! decides whether it is a pageview) and clicks (turned into a `track` here, where the DOM is).
//!
//! Clicks: the clicked element's closest `a`, `button`, `[role=button]`,
//! `input[type=submit|button]` or `[data-footfall-event]`, unless inside `.footfall-no-capture`.
//! `data-footfall-event="Name"` sends `Name` with the `data-footfall-prop-*` attributes as
//! properties; the others send `$click` with tag, id, classes, text (trimmed, ≤ 255 chars), href,
//! a short selector and page coordinates. The value of an input, select or textarea is never read
//! (inputs get no `text` at all).
import { clip } from './json.js';

const CAPTURED = 'a,button,[role=button],input[type=submit],input[type=button],[data-footfall-event]';
const PROP = 'data-footfall-prop-';

/** Safe to use unescaped in a selector. */
const ident = (s) => /^[A-Za-z_][\w-]*$/.test(s);

/** A short CSS path: up to 4 levels of `tag.class`, stopping at the nearest `#id`. */
function selector(el) {
  const parts = [];
  for (let e = el; e && parts.length < 4; e = e.parentElement) {
    if (e.id && ident(e.id)) {
      parts.push('#' + e.id);
      break;
    }
    // SVG elements have an object as className: no classes then.
    const cn = typeof e.className === 'string' ? e.className : '';
    parts.push([e.tagName.toLowerCase(), ...cn.split(/\s+/).filter(ident).slice(0, 2)].join('.'));
  }
  return clip(parts.reverse().join(' > '), 255);
}

/** A click on the page → `track(name, propertiesJson)` when it is one we capture. */
export function click(e, track) {
  const t = e.target;
  const el = t instanceof Element && t.closest(CAPTURED);
  if (!el || el.closest('.footfall-no-capture')) return;
  const name = el.getAttribute('data-footfall-event');
  const p = {};
  if (name) {
    for (const a of el.getAttributeNames()) if (a.startsWith(PROP)) p[a.slice(PROP.length)] = el.getAttribute(a) || '';
  } else {
    const tag = el.tagName.toLowerCase();
    p.tag = tag;
    p.id = el.id;
    p.classes = el.getAttribute('class') || '';
    p.text = tag === 'input' ? '' : clip((el.textContent || '').trim(), 255);
    // `a.href` is the resolved URL; SVG links have an object there, so fall back to the attribute.
    p.href = typeof el.href === 'string' ? el.href : el.getAttribute('href') || '';
    p.selector = selector(el);
    p.x = Math.trunc(e.pageX) || 0;
    p.y = Math.trunc(e.pageY) || 0;
  }
  track(name || '$click', JSON.stringify(p));
}

/**
 * Wraps `history.pushState`/`replaceState`: the page's call runs first (its exceptions stay the
 * page's), then `nav()`.
 */
export function patchHistory(nav) {
  for (const m of ['pushState', 'replaceState']) {
    const orig = history[m];
    if (typeof orig !== 'function') continue;
    history[m] = function () {
      const r = orig.apply(history, arguments);
      nav();
      return r;
    };
  }
}
