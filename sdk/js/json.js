//! JSON text for the wire, always text the ingest accepts, and clipping of long strings.
//! Everything the wasm splices into a message as JSON (properties, traits, options.context,
//! context.page, context.campaign, the batch-level context) is written here by the browser's
//! JSON.stringify: escaping and number formatting stay out of the wasm.

/** The first `max` characters (code points) of `s`. */
export const clip = (s, max) => (s.length <= max ? s : Array.from(s).slice(0, max).join(''));

// Deepest nesting we send (a properties/traits/context object counts as level 1). The ingest's
// parser stops at 128 levels and refuses the whole request, with every message batched with it.
const DEPTH = 64;

/** Counts `{` and `[` up to DEPTH + 1: a JSON text with at most DEPTH of them is at most DEPTH deep. */
function opens(s) {
  let n = 0;
  for (const c of '{[') for (let i = 0; n <= DEPTH && (i = s.indexOf(c, i) + 1); ) n++;
  return n;
}

/**
 * JSON for a value (a plain object, or a string), always text the ingest can parse. Fast path: JSON.stringify. Slow path
 * (it threw: cycles, BigInt; or it may be over DEPTH): a replacer (BigInt → string, repeated
 * object → "[Circular]" when it threw, deeper than DEPTH → "[Depth limit]"); `{}` if all fails
 * (throwing getters, Proxy traps). Lone surrogates, which JSON.stringify writes as `\udXXX`
 * escapes the ingest refuses, become U+FFFD.
 */
export function json(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch {
    // cycles, BigInt, throwing getters, too deep for the stack: the slow path decides
  }
  if (s === undefined || opens(s) > DEPTH) {
    const cyc = s === undefined;
    const seen = new Map(); // object → its depth
    try {
      s = JSON.stringify(v, function (k, x) {
        if (typeof x === 'bigint') return String(x);
        if (x && typeof x === 'object') {
          if (cyc && seen.has(x)) return '[Circular]';
          // `this` is the holder: the root's is a fresh wrapper (depth 0).
          const d = (seen.get(this) || 0) + 1;
          if (d > DEPTH) return '[Depth limit]';
          seen.set(x, d);
        }
        return x;
      });
    } catch {
      s = '';
    }
  }
  s = s || '{}';
  // JSON.stringify escapes only lone surrogates (pairs stay raw), lowercase; `\\` is matched
  // first so an escaped backslash followed by "ud800" is left alone.
  return s.includes('\\ud') ? s.replace(/\\\\|\\ud[89a-f]../g, (m) => (m[2] ? '\\ufffd' : m)) : s;
}
