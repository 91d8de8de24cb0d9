//! Zeroes data the release wasm carries but never reads: the Rust standard library's panic
//! texts and the integer-formatting digit table. Run by sdk/build.sh after `wasm-opt`:
//!   node sdk/scripts/scrub-dead-data.mjs <wasm-dis> <file.wasm>
//!
//! Why: `wasm-opt -tnh` removes every panic path from the code, but not the data those paths
//! used (binaryen cannot know which bytes of a data segment are unused). What remains is
//! liballoc's panic locations (`/rustc/<hash>/library/alloc/src/….rs`), its messages ("capacity
//! overflow", "memory allocation of … bytes failed") and core::fmt's "00010203…99" table:
//! ~400 bytes, ~320 B of the gzip download. Zeroed bytes compress to almost nothing.
//!
//! Safety: a candidate is zeroed only when no instruction of the code refers to an address
//! inside it (every `i32.const` and every load/store `offset=` of the disassembly, which is how
//! wasm code names static data). The data that still points at the candidates (panic Location
//! records, fmt argument pieces) is itself read only by panic code; and the panic handler
//! (src/runtime.rs) never reads a message anyway. A candidate still referenced is kept and
//! reported. The browser tests and e2e suites run the scrubbed file.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [wasmDis, file] = process.argv.slice(2);
if (!wasmDis || !file) {
  console.error('usage: scrub-dead-data.mjs <wasm-dis> <file.wasm>');
  process.exit(2);
}
const bytes = readFileSync(file);

/** Unsigned LEB128 at `o`: [value, next offset]. */
function leb(o) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[o++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [v, o];
  }
}

/** Signed LEB128 (an i32.const operand). */
function sleb(o) {
  let v = 0;
  let shift = 0;
  let b;
  do {
    b = bytes[o++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b >= 0x80);
  if (b & 0x40) v -= 2 ** shift;
  return [v, o];
}

// Active data segments of memory 0 with a constant offset: { addr, at (file offset), len }.
const segments = [];
let o = 8;
while (o < bytes.length) {
  const id = bytes[o];
  const [size, body] = leb(o + 1);
  if (id === 11) {
    let [count, p] = leb(body);
    while (count--) {
      let flags;
      [flags, p] = leb(p);
      let addr = null;
      if (flags === 0 || flags === 2) {
        if (flags === 2) [, p] = leb(p); // memory index
        if (bytes[p] === 0x41) [addr, p] = sleb(p + 1);
        else throw new Error('scrub-dead-data: a data segment offset that is not i32.const');
        if (bytes[p++] !== 0x0b) throw new Error('scrub-dead-data: unexpected offset expression');
      }
      let len;
      [len, p] = leb(p);
      if (addr !== null) segments.push({ addr, at: p, len });
      p += len;
    }
  }
  o = body + size;
}

// Every address the code can name directly.
const text = execFileSync(wasmDis, [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
const referenced = [];
for (const m of text.matchAll(/\bi32\.const (-?\d+)|\boffset=(\d+)/g)) referenced.push(Number(m[1] ?? m[2]) >>> 0);

const digits = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join('');
const CANDIDATES = [
  ['liballoc panic location', /\/rustc\/[0-9a-f]{40}\/library\/[A-Za-z0-9_/.-]+?\.rs/g],
  ['liballoc panic message', /memory allocation of | bytes failed|capacity overflow/g],
  ['core::fmt digit table', new RegExp(digits, 'g')],
];

let zeroed = 0;
const kept = [];
for (const seg of segments) {
  const data = bytes.subarray(seg.at, seg.at + seg.len);
  const ascii = data.toString('latin1');
  for (const [what, re] of CANDIDATES) {
    for (const m of ascii.matchAll(re)) {
      const start = seg.addr + m.index;
      const end = start + m[0].length;
      if (referenced.some((r) => r >= start && r < end)) {
        kept.push(`${what} at ${start} (the code refers to it)`);
        continue;
      }
      data.fill(0, m.index, m.index + m[0].length);
      zeroed += m[0].length;
    }
  }
}
writeFileSync(file, bytes);
console.log(`[sdk] scrub-dead-data: zeroed ${zeroed} bytes of unused panic text and digit table`);
for (const k of kept) console.log(`[sdk] scrub-dead-data: kept ${k}`);
