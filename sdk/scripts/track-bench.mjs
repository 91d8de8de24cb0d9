//! Measures the main-thread cost of 10,000 `track('evt', {i})` calls in real Chromium against the
//! real ingest (5 fresh pages), with an empty function and JSON.stringify alone as yardsticks, and
//! checks every event reached the NDJSON. Not a test (timings drift on shared machines).
//! Run from the repo root after `bash sdk/build.sh` and `cargo build -p footfall-ingest`:
//!   node sdk/scripts/track-bench.mjs
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import os from 'node:os';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(ROOT, 'tests/package.json'));
const { chromium } = require('playwright-core');

const PKG = path.join(ROOT, 'sdk/pkg');
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'ff-track-bench-'));
const BIN = process.env.FOOTFALL_INGEST_BIN || path.join(ROOT, 'target/debug/footfall-ingest');
const ingest = spawn(BIN, ['--listen', '127.0.0.1:0', '--data-dir', data, '--fsync', 'never'], { stdio: ['ignore', 'pipe', 'ignore'] });
const ingestUrl = await new Promise((res) => ingest.stdout.on('data', (d) => { const m = /http:\/\/\S+/.exec(String(d)); if (m) res(m[0]); }));
const page = `<!doctype html><title>bench</title><script type="module">
import { init } from '/pkg/index.js';
window.ff = await init({ writeKey: 'dev', apiHost: '${ingestUrl}', maxQueueSize: 20000, autocapture: false });
</script>`;
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/pkg/')) {
    const f = path.join(PKG, req.url.slice(5));
    res.writeHead(200, { 'content-type': f.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
    return res.end(fs.readFileSync(f));
  }
  res.writeHead(200, { 'content-type': 'text/html' }); res.end(page);
}).listen(0, '127.0.0.1');
await new Promise((r) => server.on('listening', r));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox','--disable-gpu','--disable-dev-shm-usage','--disable-background-networking','--disable-component-update','--disable-sync','--no-first-run'] });
const results = [];
for (let run = 0; run < 5; run++) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(`http://127.0.0.1:${server.address().port}/`);
  await p.waitForFunction(() => window.ff);
  const r = await p.evaluate(async () => {
    const noop = (e, p) => p;
    let c0 = performance.now();
    for (let i = 0; i < 10000; i++) noop('evt', { i });
    const empty = performance.now() - c0;
    c0 = performance.now();
    let n = 0;
    for (let i = 0; i < 10000; i++) n += JSON.stringify({ i }).length;
    const stringify = performance.now() - c0;
    const t0 = performance.now();
    for (let i = 0; i < 10000; i++) window.ff.track('evt', { i });
    const loop = performance.now() - t0;
    const t1 = performance.now();
    await new Promise((r) => setTimeout(r, 0)); // the end-of-task persist
    const taskEnd = performance.now() - t1;
    await window.ff.flush();
    return { loop, taskEnd, flushed: performance.now() - t0, empty, stringify };
  });
  results.push(r);
  await ctx.close();
}
await new Promise((r) => setTimeout(r, 500));
let lines = 0;
for (const f of fs.readdirSync(data, { recursive: true })) if (/\.ndjson(\.open)?$/.test(f)) lines += fs.readFileSync(path.join(data, f), 'utf8').split('\n').filter((l) => l.includes('"evt"')).length;
console.log(results.map((r) => `empty fn ${r.empty.toFixed(1)} ms, JSON.stringify alone ${r.stringify.toFixed(1)} ms, loop ${r.loop.toFixed(1)} ms, end-of-task ${r.taskEnd.toFixed(1)} ms, all acked after ${r.flushed.toFixed(0)} ms`).join('\n'));
const loops = results.map((r) => r.loop).sort((a, b) => a - b);
console.log(`median loop ${loops[2].toFixed(1)} ms = ${(loops[2] / 10).toFixed(2)} µs/call; events in NDJSON: ${lines} of ${results.length * 10000}`);
await browser.close(); server.close(); ingest.kill();
fs.rmSync(data, { recursive: true, force: true });
