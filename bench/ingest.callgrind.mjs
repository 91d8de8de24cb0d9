//! Repeatable cost of the ingest (issue 5: "valgrind --tool=callgrind for repeatable instruction
//! counts"): user-space instructions per event for single-message /v1/track and 100-message
//! /v1/batch, with `--fsync always`, independent of what else the shared machine is doing.
//!
//! The request bodies are the very ones the timed benchmark sends: wrk with bench/wrk/footfall.lua
//! posts them once to a local capture server. Each is then replayed sequentially (one keep-alive
//! connection) to footfall-ingest running under callgrind, twice — SMALL and LARGE requests — and
//! the difference of the two totals divided by the extra events cancels start-up and shut-down.
//! Kernel time (fsync, sockets) is not counted by callgrind. Writes results/callgrind.json and the
//! top functions of each LARGE run to results/callgrind-<mode>.txt (callgrind_annotate).
//!
//! Usage: node ingest.callgrind.mjs [--keep] [--only track|batch]
//! (`--keep` leaves the raw callgrind outputs in the printed temp dir, for
//! `callgrind_annotate --inclusive=yes`)

import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, ingestBin, stopProcess } from './lib/ingest.mjs';

const BENCH = path.join(REPO, 'bench');
const RESULTS = path.join(BENCH, 'results');
const log = (...a) => console.error('[callgrind]', ...a);
const KEEP = process.argv.includes('--keep');
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;
const MODES = [
  { mode: 'track', batch: 1, small: 200, large: 1200 },
  { mode: 'batch', batch: 100, small: 20, large: 120 },
].filter((m) => !ONLY || m.mode === ONLY);

/** Captures `count` request bodies as wrk + footfall.lua would send them. */
async function captureBodies(mode, batch, count) {
  const bodies = [];
  let pathSeen = '';
  let ctype = '';
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (bodies.length < count) bodies.push(Buffer.concat(chunks));
      pathSeen = req.url;
      ctype = req.headers['content-type'];
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"success":true}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((resolve, reject) => {
    const p = spawn('wrk', ['-t1', '-c1', '-d3s', '-s', path.join(BENCH, 'wrk', 'footfall.lua'), `http://127.0.0.1:${port}/`], {
      env: { ...process.env, BENCH_MODE: mode, BENCH_BATCH: String(batch), BENCH_MAX_REQUESTS: String(count), BENCH_OUT: '/dev/null' },
      stdio: 'ignore',
    });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`wrk exited ${code}`))));
  });
  server.close();
  if (bodies.length < count) throw new Error(`captured only ${bodies.length} of ${count} bodies`);
  return { bodies, path: pathSeen, ctype };
}

/** Runs the ingest under callgrind, replays `bodies`, stops it; returns the total Ir. */
async function underCallgrind(tmp, name, reqs) {
  const out = path.join(tmp, `${name}.callgrind`);
  const dataDir = path.join(tmp, `data-${name}`);
  const proc = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, '--trace-children=no',
    ingestBin(), '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--write-key', 'dev', '--fsync', 'always'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let err = '';
  proc.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const origin = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`ingest under valgrind did not start: ${err}`)), 120_000);
    proc.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (c) => reject(new Error(`valgrind exited ${c}: ${err}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (const r of reqs) {
    const status = await new Promise((resolve, reject) => {
      const q = http.request(`${origin}${r.path}`, { method: 'POST', agent, headers: { 'Content-Type': r.ctype, 'Content-Length': r.body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      q.on('error', reject);
      q.end(r.body);
    });
    if (status !== 200) throw new Error(`ingest answered ${status}`);
  }
  agent.destroy();
  proc.removeAllListeners('exit');
  await stopProcess(proc);
  const text = fs.readFileSync(out, 'utf8');
  const m = text.match(/^(?:summary|totals):\s+(\d+)/m);
  if (!m) throw new Error(`no totals in ${out}`);
  return { ir: Number(m[1]), file: out };
}

async function main() {
  execFileSync('valgrind', ['--version']);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'footfall-callgrind-'));
  fs.mkdirSync(RESULTS, { recursive: true });
  const result = { date: new Date().toISOString(), valgrind: execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim(), modes: [] };
  try {
    for (const m of MODES) {
      const cap = await captureBodies(m.mode, m.batch, m.large);
      const reqs = cap.bodies.map((body) => ({ body, path: cap.path, ctype: cap.ctype }));
      const small = await underCallgrind(tmp, `${m.mode}-small`, reqs.slice(0, m.small));
      const large = await underCallgrind(tmp, `${m.mode}-large`, reqs);
      const events = (m.large - m.small) * m.batch;
      const irPerEvent = (large.ir - small.ir) / events;
      const bytesPerEvent = reqs.slice(m.small).reduce((a, r) => a + r.body.length, 0) / events;
      const annotate = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=99', large.file], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'ignore'] });
      const top = annotate.split('\n').filter((l) => /^\s*[\d,]+ \(/.test(l)).slice(0, 30).join('\n');
      fs.writeFileSync(path.join(RESULTS, `callgrind-${m.mode}.txt`), `${m.mode} ×${m.batch}, ${m.large} requests (self instructions):\n${top}\n`);
      result.modes.push({ mode: m.mode, batch: m.batch, requests: [m.small, m.large], ir: [small.ir, large.ir], irPerEvent, bytesPerEvent });
      log(`${m.mode} ×${m.batch}: ${Math.round(irPerEvent).toLocaleString('en-US')} instructions per event (${bytesPerEvent.toFixed(0)} bytes of JSON per event)`);
    }
  } finally {
    if (KEEP) log(`raw outputs kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.writeFileSync(path.join(RESULTS, 'callgrind.json'), JSON.stringify(result, null, 2));
  log('wrote bench/results/callgrind.json');
}

main().catch((e) => {
  console.error('[callgrind] FAILED:', e.stack || e);
  process.exit(1);
});
