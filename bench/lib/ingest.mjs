//! Starts and stops a real footfall-ingest process for the benchmarks, and reads back what it wrote.
//!
//! Follows the binary contract (contracts.md): `--listen 127.0.0.1:0` and one stdout line
//! `footfall-ingest listening on http://127.0.0.1:PORT`; files `*.ndjson` / `*.ndjson.open`
//! under the data dir, one JSON object per line.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

export function ingestBin() {
  return process.env.FOOTFALL_INGEST_BIN || path.join(REPO, 'target', 'release', 'footfall-ingest');
}

/** Spawns the ingest; resolves once it has printed its listening line (or rejects after 20 s). */
export function startIngest({ dataDir, fsync = 'always', extraArgs = [], bin = ingestBin() }) {
  fs.mkdirSync(dataDir, { recursive: true });
  const args = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--write-key', 'dev',
    '--fsync', fsync, ...extraArgs];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`ingest did not start in 20 s: ${stderr}`)); }, 20_000);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`ingest exited (${code}) before listening: ${stderr}`)); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/footfall-ingest listening on (http:\/\/127\.0\.0\.1:(\d+))/);
      if (!m) return;
      clearTimeout(timer);
      proc.removeAllListeners('exit');
      resolve({
        origin: m[1],
        port: Number(m[2]),
        pid: proc.pid,
        proc,
        stderr: () => stderr,
        stop: () => stopProcess(proc),
      });
    });
  });
}

/** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
export function stopProcess(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', (code) => { clearTimeout(kill); resolve(code); });
    proc.kill('SIGTERM');
  });
}

/** Reads /proc/PID/status: VmRSS (now) and VmHWM (peak), in KiB. */
export function rss(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1]);
    return { rssKiB: get('VmRSS'), hwmKiB: get('VmHWM') };
  } catch {
    return { rssKiB: NaN, hwmKiB: NaN };
  }
}

function ndjsonFiles(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...ndjsonFiles(p));
    else if (/\.ndjson(\.open)?$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Counts the `evt` track events in the ingest's NDJSON: lines, distinct `properties.i`, and
 * messageIds seen more than once (each must arrive exactly once). A torn last line of a file that
 * is still being written is ignored. */
export function countDelivered(dataDir, event = 'evt') {
  const seenI = new Set();
  const seenId = new Set();
  let lines = 0;
  let dupIds = 0;
  let all = 0;
  for (const f of ndjsonFiles(dataDir)) {
    const text = fs.readFileSync(f, 'utf8');
    for (const line of text.split('\n')) {
      if (!line) continue;
      let m;
      try { m = JSON.parse(line); } catch { continue; }
      all += 1;
      if (m.event !== event) continue;
      lines += 1;
      if (m.properties && m.properties.i !== undefined) seenI.add(m.properties.i);
      if (m.messageId) {
        if (seenId.has(m.messageId)) dupIds += 1;
        seenId.add(m.messageId);
      }
    }
  }
  return { all, lines, distinct: seenI.size, dupIds };
}
