//! Loads footfall_sdk_bg.wasm and moves strings across its boundary (see sdk/src/wasm.rs).
//!
//! The download and compile start when this module is evaluated, not when init() is called:
//! the page's own work overlaps them, so the SDK is ready sooner. No wasm-bindgen glue: the wasm
//! has a few plain exports and twelve plain imports, and strings travel as UTF-8 in its memory.
const url = new URL('./footfall_sdk_bg.wasm', import.meta.url);
const enc = new TextEncoder();
const dec = new TextDecoder();
const W = WebAssembly;
// Taken at module evaluation: a page that replaces Date or toISOString later cannot
// change our timestamps.
const D = Date;
const toISO = D.prototype.toISOString;

let second = NaN;
let head = '';
/**
 * `ms` (a whole number, 0 … 9999-12-31: the wasm clamps) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
 * toISOString costs ~1 µs in V8; the events of a burst share their second, so that part is
 * formatted once per second and the milliseconds appended (~60 ns).
 */
export const iso = (ms) => {
  const m = ms % 1000;
  if (ms - m !== second) head = toISO.call(new D((second = ms - m))).slice(0, 20);
  return head + String(m + 1000).slice(1) + 'Z';
};

/** Fills `a` (a Uint8Array) with random bytes: crypto, or Math.random on a page without it. */
export function fillRandom(a) {
  try {
    crypto.getRandomValues(a);
  } catch {
    // ids stay unique enough for deduplication, which is all they are used for.
    for (let i = 0; i < a.length; i++) a[i] = Math.random() * 256;
  }
}

/**
 * Writes `s` as UTF-8 into `b` (a view of the wasm memory) at `o`; returns where it ends. A short
 * ASCII string goes byte by byte: `encodeInto` is a call into the runtime (~300 ns in V8, and an
 * event makes four), where a loop over a few characters costs tens of ns.
 */
export const write = (b, o, s) => {
  let k = 0;
  if (s.length < 64) for (let c; k < s.length && (c = s.charCodeAt(k)) < 128; k++) b[o++] = c;
  return k < s.length ? o + enc.encodeInto(s.slice(k), b.subarray(o)).written : o;
};

let compiling;
/** The compiled module (one download per page; a failed one is retried by the next call). */
export function compile() {
  if (!compiling) {
    // Issued now, not in a microtask: the synchronous work that follows module evaluation
    // (init() reads the Intl context first, 20-30 ms cold) must not hold the download back.
    // A page whose fetch (or compileStreaming) throws gets a rejection that init() reports,
    // never an exception at module evaluation.
    let started;
    try {
      started = W.compileStreaming(fetch(url));
    } catch (e) {
      started = Promise.reject(e);
    }
    compiling = started
      // A server that does not send application/wasm: compile from the bytes instead.
      .catch(() => fetch(url).then((r) => r.arrayBuffer()).then((b) => W.compile(b)))
      .catch((e) => {
        compiling = undefined;
        throw e;
      });
  }
  return compiling;
}
// Start now; a failure here is reported by init(), not as an unhandled rejection.
compile().catch(() => {});

/** Instantiates the wasm with `env` (the imports, src/wasm.rs) and returns the bridge. */
export async function instantiate(env) {
  const x = (await W.instantiate(await compile(), { env })).exports;
  const mem = x.memory;
  let u8 = new Uint8Array(mem.buffer);
  // A memory.grow detaches the old buffer, and a view of a detached buffer has length 0: take a
  // fresh view then. (Comparing with `mem.buffer` instead costs ~70 ns per call in V8, the
  // getter; this runs a few times per event.)
  const view = () => (u8.length ? u8 : (u8 = new Uint8Array(mem.buffer)));
  return {
    x,
    view,
    /** UTF-8 at [p, p + n) of the wasm memory. */
    str: (p, n) => dec.decode(view().subarray(p, p + n)),
    /**
     * Writes the strings into the wasm's input buffer, separated by 0xFF; returns the byte count,
     * or -1 when the wasm is busy (a page callback re-entering us: the call is dropped).
     */
    put(parts) {
      let cap = parts.length;
      for (const s of parts) cap += s.length * 3;
      const p = x.b(cap); // ff_buf
      if (!p) return -1;
      const b = view();
      let o = p;
      for (let i = 0; i < parts.length; i++) {
        if (i) b[o++] = 255;
        o = write(b, o, parts[i]);
      }
      return o - p;
    },
    enc,
  };
}
