//! Tests of sdk/scripts/scrub-dead-data.mjs (the release build's last step) on modules assembled
//! by binaryen's wasm-as: unreferenced panic text and digit tables are zeroed, anything the code
//! refers to (as an i32.const or a load offset) is kept byte for byte, other data is untouched;
//! and the shipped wasm (sdk/pkg) has no such text left.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TMP_DIR } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'tests', 'node_modules', '.bin');
const SCRIPT = path.join(ROOT, 'sdk', 'scripts', 'scrub-dead-data.mjs');
fs.mkdirSync(TMP_DIR, { recursive: true });
const TMP = fs.mkdtempSync(path.join(TMP_DIR, 'scrub-'));
test.after(() => fs.rmSync(TMP, { recursive: true, force: true }));

const DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join('');
const PATH = '/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/alloc/src/raw_vec/mod.rs';
const BASE = 1048576;

/** Assembles a module whose one data segment at BASE is `parts` joined; `code` is the body. */
function assemble(name, parts, code) {
  const data = parts.join('');
  const wat = `(module (memory 17) (data (i32.const ${BASE}) "${data}")
    (func (export "f") (param i32) (result i32) ${code}))`;
  const watFile = path.join(TMP, `${name}.wat`);
  const wasm = path.join(TMP, `${name}.wasm`);
  fs.writeFileSync(watFile, wat);
  execFileSync(path.join(BIN, 'wasm-as'), [watFile, '-o', wasm]);
  return wasm;
}

/** Runs the script; returns [the module file afterwards (latin1: the data is in it), its output]. */
function scrub(wasm) {
  const out = execFileSync('node', [SCRIPT, path.join(BIN, 'wasm-dis'), wasm], { encoding: 'utf8' });
  const bytes = fs.readFileSync(wasm);
  new WebAssembly.Module(bytes); // still a valid module
  return [bytes.toString('latin1'), out];
}

test('unreferenced panic text and digit table are zeroed, the rest of the data is not', () => {
  const parts = ['live data', PATH, 'capacity overflow', DIGITS, 'tail'];
  const wasm = assemble('dead', parts, `(i32.load8_u (i32.const ${BASE}))`);
  const [bytes, out] = scrub(wasm);
  assert.match(out, new RegExp(`zeroed ${PATH.length + 'capacity overflow'.length + 200} bytes`));
  assert.ok(bytes.includes('live data') && bytes.includes('tail'), 'other data kept');
  for (const dead of [PATH, 'capacity overflow', DIGITS]) assert.ok(!bytes.includes(dead), `${dead.slice(0, 20)} zeroed`);
});

test('text the code refers to, by i32.const or by a load offset, is kept', () => {
  const parts = ['live', 'capacity overflow', DIGITS];
  const digitsAt = BASE + 'live'.length + 'capacity overflow'.length;
  // The message through an i32.const inside it, the digit table through a load offset.
  const code = `(drop (i32.const ${BASE + 'live'.length + 3})) (i32.load16_u offset=${digitsAt + 10} (local.get 0))`;
  const wasm = assemble('live', parts, code);
  const [bytes, out] = scrub(wasm);
  assert.ok(bytes.includes('capacity overflow'), 'referenced message kept');
  assert.ok(bytes.includes(DIGITS), 'referenced digit table kept');
  assert.match(out, /zeroed 0 bytes/);
  assert.match(out, /kept liballoc panic message/);
  assert.match(out, /kept core::fmt digit table/);
});

test('the release wasm carries none of that text', () => {
  const shipped = path.join(ROOT, 'sdk', 'pkg', 'footfall_sdk_bg.wasm');
  const bytes = fs.readFileSync(shipped).toString('latin1');
  for (const dead of ['/rustc/', 'capacity overflow', 'memory allocation of', DIGITS]) {
    assert.ok(!bytes.includes(dead), `sdk/pkg wasm still holds ${dead.slice(0, 20)}`);
  }
});
