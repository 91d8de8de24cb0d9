//! A/B of footfall-ingest binaries against nginx, in one run: the `/v1/track` (or `/v1/batch`)
//! peak of `ingest.bench.mjs`, for two or more builds, alternating so the shared machine's drift
//! lands on all of them alike. Each round runs nginx, then every binary in turn (a fresh process
//! and data dir each, `--fsync always`); the table gives each one's median req/s, its ratio to
//! nginx's median, and the server CPU per request split into user and kernel time
//! (`/proc/PID/stat` utime/stime around the wrk run, all threads; nginx: master + workers).
//!
//! Usage: node ab.mjs [--rounds 5] [--duration 5] [--mode track|batch] NAME=BINARY...
//!   e.g. node ab.mjs base=/tmp/base/footfall-ingest new=../target/release/footfall-ingest

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, startIngest } from './lib/ingest.mjs';

const BENCH = path.join(REPO, 'bench');
const LUA = path.join(BENCH, 'wrk', 'footfall.lua');
const TICK = 100; // USER_HZ
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = argv[i + 1];
  argv.splice(i, 2);
  return v;
};
const ROUNDS = Number(opt('rounds', 5));
const DURATION = Number(opt('duration', 5));
const MODE = opt('mode', 'track');
const CONNS = Number(opt('conns', 64));
const subjects = argv.map((a) => {
  const [name, bin] = a.split('=');
  return { name, bin: path.resolve(bin) };
});
if (!subjects.length) {
  console.error('usage: node ab.mjs [--rounds N] [--duration S] [--mode track|batch] NAME=BINARY...');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function cpu(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]) / TICK;
      sys += Number(f[12]) / TICK;
    } catch { /* gone */ }
  }
  return { user, sys };
}

function wrk(url, pids) {
  const out = path.join(os.tmpdir(), `footfall-ab-${process.pid}-${Date.now()}.json`);
  const env = { ...process.env, BENCH_MODE: MODE, BENCH_BATCH: '100', BENCH_OUT: out };
  const args = ['-t2', `-c${CONNS}`, `-d${DURATION}s`, '--timeout', '5s', '-s', LUA, url];
  const c0 = cpu(pids);
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => {
      const c1 = cpu(pids);
      if (code !== 0 || !fs.existsSync(out)) return reject(new Error(`wrk failed (${code}): ${err}`));
      const r = JSON.parse(fs.readFileSync(out, 'utf8').trim().split('\n').pop());
      fs.rmSync(out, { force: true });
      const errors = r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout;
      resolve({
        rps: r.requests / (r.duration_us / 1e6),
        userUs: ((c1.user - c0.user) * 1e6) / r.requests,
        sysUs: ((c1.sys - c0.sys) * 1e6) / r.requests,
        p99ms: r.p99_us / 1000,
        errors,
      });
    });
  });
}

async function startNginx(tmp) {
  const prefix = path.join(tmp, 'nginx');
  fs.mkdirSync(prefix, { recursive: true });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = fs.readFileSync(path.join(BENCH, 'nginx.conf'), 'utf8')
    .replaceAll('__PORT__', String(port)).replaceAll('__PREFIX__', prefix);
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf);
  const proc = spawn('/usr/sbin/nginx', ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', 'stderr'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{}' });
      if (r.status === 204) break;
    } catch { /* not yet */ }
  }
  const children = () => {
    try {
      return fs.readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch { return []; }
  };
  return { url: `http://127.0.0.1:${port}`, pids: [proc.pid, ...children()], stop: () => proc.kill('SIGTERM') };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'footfall-ab-'));
const results = { nginx: [] };
for (const s of subjects) results[s.name] = [];
const nginx = await startNginx(tmp);
try {
  for (let round = 0; round < ROUNDS; round++) {
    const n = await wrk(nginx.url, nginx.pids);
    results.nginx.push(n);
    const line = [`round ${round + 1}: nginx ${n.rps.toFixed(0)}`];
    // Rotate the order each round so no binary always runs right after nginx.
    for (let k = 0; k < subjects.length; k++) {
      const s = subjects[(k + round) % subjects.length];
      const dataDir = path.join(tmp, `data-${s.name}-${round}`);
      const server = await startIngest({ dataDir, bin: s.bin });
      await sleep(200);
      const r = await wrk(server.origin, [server.pid]);
      await server.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      results[s.name].push(r);
      line.push(`${s.name} ${r.rps.toFixed(0)}${r.errors ? ` (${r.errors} errors)` : ''}`);
    }
    console.error(line.join(', '));
  }
} finally {
  nginx.stop();
}
const ngx = median(results.nginx.map((r) => r.rps));
console.log(`\n${MODE}, wrk -t2 -c${CONNS} -d${DURATION}s, ${ROUNDS} rounds, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| subject | req/s rounds | median | % of nginx | user µs/req | kernel µs/req | p99 ms |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, rs] of Object.entries(results)) {
  const m = median(rs.map((r) => r.rps));
  console.log(`| ${name} | ${rs.map((r) => r.rps.toFixed(0)).join(', ')} | ${m.toFixed(0)} | ${((100 * m) / ngx).toFixed(1)} % | `
    + `${median(rs.map((r) => r.userUs)).toFixed(1)} | ${median(rs.map((r) => r.sysUs)).toFixed(1)} | ${median(rs.map((r) => r.p99ms)).toFixed(2)} |`);
}
fs.rmSync(tmp, { recursive: true, force: true });
