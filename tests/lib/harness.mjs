//! End-to-end test harness shared by every Footfall e2e test (tests/*.test.mjs).
//!
//! It owns the real moving parts an e2e test needs — the real `footfall-ingest` binary on an
//! ephemeral port, a static file server for test pages and `sdk/pkg`, and headless Chromium via
//! playwright-core — and reads back the NDJSON the ingest wrote, so tests assert on what was
//! durably stored rather than on network mocks.
//!
//! API (all paths may be absolute or relative to the repository root):
//!
//!   startIngest({ args = [], dataDir, writeKey = 'dev' } = {}) -> Promise<Ingest>
//!     Spawns $FOOTFALL_INGEST_BIN or <repo>/target/debug/footfall-ingest with
//!     `--listen 127.0.0.1:0 --data-dir <dataDir or fresh dir under tests/.tmp/> --write-key dev …args`
//!     and waits for its stdout line `footfall-ingest listening on http://HOST:PORT`.
//!     Ingest = { url, port, dataDir, proc, running: boolean, stderr(): string (all its stderr),
//!                stop(): Promise<exitCode>   SIGTERM and wait (graceful: files renamed .open → .ndjson),
//!                kill(): Promise<signal>     SIGKILL and wait (crash),
//!                restart(): Promise<void>    start again on the same port and data dir,
//!                events(): Promise<object[]> = readEvents(dataDir),
//!                raw(): Promise<Buffer>       = readRawNdjson(dataDir),
//!                cleanup(): Promise<void>    stop if running, then delete the data dir }
//!
//!   readEvents(dataDir) -> Promise<object[]>
//!     Every line of every `*.ndjson` and `*.ndjson.open` file under dataDir, parsed, in file order
//!     (paths sorted, lines in order). Throws on an unparsable line or a last line without '\n'.
//!
//!   readRawNdjson(dataDir) -> Promise<Buffer>
//!     The concatenated raw bytes of the same files (for "this secret appears nowhere" checks).
//!
//!   startStatic(routes) -> Promise<{ url, port, stop() }>
//!     node:http server on 127.0.0.1:0. `routes` maps URL prefixes to a directory or to
//!     `{ dir, headers }` (extra response headers, e.g. a CSP). Longest prefix wins. `.wasm` is served
//!     as application/wasm, `.js`/`.mjs` as text/javascript; `Cache-Control: no-store` unless a route's headers override it;
//!     `/dir/` serves `/dir/index.html`. Example: startStatic({ '/': 'tests/pages', '/pkg/': 'sdk/pkg' }).
//!
//!   launchBrowser(options?) -> Promise<Browser>
//!     playwright-core Chromium at /usr/bin/chromium (or $FOOTFALL_CHROMIUM), headless, with the
//!     flags from shared/SETUP.md. `options` are merged into chromium.launch's options.
//!
//!   watchPageErrors(page) -> string[]
//!     Collects uncaught exceptions and unhandled rejections (`pageerror`) of a page into the
//!     returned array; tests assert it stays empty.
//!
//!   waitFor(fn, { timeoutMs = 10000, intervalMs = 50, message } = {}) -> Promise<value>
//!     Polls (async) fn until it returns a truthy value and returns that value. Errors thrown by fn
//!     while polling are retried; on timeout the last error (or `message`) is thrown.
//!
//!   waitForEvents(ingest, predicate = () => true, { count = 1, timeoutMs = 10000 } = {})
//!     -> Promise<object[]>  Polls ingest.events() until at least `count` events match predicate;
//!     returns all matching events (may be more than count; assert exact counts yourself).
//!
//!   settle(ingest, { quietMs = 750, timeoutMs = 10000 }) -> Promise<object[]>
//!     Waits until the ingest's event count has not changed for quietMs, then returns the events:
//!     use it before asserting "exactly N" or "none", so late duplicates would be seen.
//!
//!   sleep(ms), CHROMIUM_ARGS, REPO_ROOT, TMP_DIR (absolute paths).
//!
//! Env: FOOTFALL_INGEST_BIN (ingest binary), FOOTFALL_CHROMIUM (browser executable).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TMP_DIR = path.join(REPO_ROOT, 'tests', '.tmp');

const fromRoot = (p) => (path.isAbsolute(p) ? p : path.join(REPO_ROOT, p));

// Every ingest this process started, so a crashed or interrupted test run leaves no server behind.
const liveProcs = new Set();
process.on('exit', () => {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

const LISTEN_LINE = /^footfall-ingest listening on (http:\/\/[^\s]+?):(\d+)\s*$/;

function ingestBinary() {
  const bin = process.env.FOOTFALL_INGEST_BIN
    ? fromRoot(process.env.FOOTFALL_INGEST_BIN)
    : path.join(REPO_ROOT, 'target', 'debug', 'footfall-ingest');
  if (!fs.existsSync(bin)) {
    throw new Error(
      `footfall-ingest binary not found at ${bin}: run \`cargo build -p footfall-ingest\` or set FOOTFALL_INGEST_BIN`,
    );
  }
  return bin;
}

/** Spawns the binary and resolves once it printed its listening line. */
function spawnIngest(bin, argv, log) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveProcs.add(proc);
    let stdoutBuf = '';
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        proc.kill('SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`footfall-ingest did not start: ${why}\nargs: ${argv.join(' ')}\nstderr:\n${log.text.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail('no listening line on stdout within 20 s'), 20_000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log.text += chunk;
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      stdoutBuf += chunk;
      let nl;
      while (!settled && (nl = stdoutBuf.indexOf('\n')) >= 0) {
        const line = stdoutBuf.slice(0, nl);
        stdoutBuf = stdoutBuf.slice(nl + 1);
        const m = LISTEN_LINE.exec(line);
        if (m) {
          settled = true;
          clearTimeout(timer);
          resolve({ proc, url: `${m[1]}:${m[2]}`, port: Number(m[2]) });
        }
      }
    });
    proc.on('error', (e) => fail(String(e)));
    proc.on('exit', (code, signal) => {
      liveProcs.delete(proc);
      fail(`exited with code ${code} signal ${signal}`);
    });
  });
}

async function waitExit(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
  const [code, signal] = await once(proc, 'exit');
  return code ?? signal;
}

export async function startIngest({ args = [], dataDir, writeKey = 'dev' } = {}) {
  const bin = ingestBinary();
  await fsp.mkdir(TMP_DIR, { recursive: true });
  const dir = dataDir ? fromRoot(dataDir) : await fsp.mkdtemp(path.join(TMP_DIR, 'ingest-'));
  await fsp.mkdir(dir, { recursive: true });
  const log = { text: '' };
  const argvFor = (listen) => ['--listen', listen, '--data-dir', dir, '--write-key', writeKey, ...args];

  let current = await spawnIngest(bin, argvFor('127.0.0.1:0'), log);
  const ingest = {
    url: current.url,
    port: current.port,
    dataDir: dir,
    get proc() {
      return current.proc;
    },
    stderr: () => log.text,
    get running() {
      return current.proc.exitCode === null && current.proc.signalCode === null;
    },
    async stop() {
      if (!ingest.running) return waitExit(current.proc);
      current.proc.kill('SIGTERM');
      const code = await waitExit(current.proc);
      return code;
    },
    async kill() {
      if (!ingest.running) return waitExit(current.proc);
      current.proc.kill('SIGKILL');
      return waitExit(current.proc);
    },
    async restart() {
      if (ingest.running) await ingest.stop();
      log.text += '\n--- restart ---\n';
      // The old socket may linger briefly; retry the bind for a few seconds.
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          current = await spawnIngest(bin, argvFor(`127.0.0.1:${ingest.port}`), log);
          return;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await sleep(200);
        }
      }
    },
    events: () => readEvents(dir),
    raw: () => readRawNdjson(dir),
    async cleanup() {
      await ingest.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  return ingest;
}

async function ndjsonFiles(dir) {
  const out = [];
  const walk = async (d) => {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch (e) {
      if (e.code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ndjson') || e.name.endsWith('.ndjson.open')) out.push(p);
    }
  };
  await walk(dir);
  // Sorting the paths gives source / dt=day / HH-seq order; `.ndjson` and its `.ndjson.open` never
  // coexist for the same seq.
  return out.sort();
}

export async function readRawNdjson(dataDir) {
  const bufs = [];
  for (const f of await ndjsonFiles(fromRoot(dataDir))) bufs.push(await fsp.readFile(f));
  return Buffer.concat(bufs);
}

export async function readEvents(dataDir) {
  const events = [];
  for (const f of await ndjsonFiles(fromRoot(dataDir))) {
    const text = await fsp.readFile(f, 'utf8');
    if (text.length === 0) continue;
    if (!text.endsWith('\n')) {
      throw new Error(`${f}: last line is torn (no trailing newline): ${JSON.stringify(text.slice(-200))}`);
    }
    const lines = text.slice(0, -1).split('\n');
    lines.forEach((line, i) => {
      let obj;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new Error(`${f}:${i + 1}: not JSON (${e.message}): ${JSON.stringify(line.slice(0, 200))}`);
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
        throw new Error(`${f}:${i + 1}: not a JSON object: ${JSON.stringify(line.slice(0, 200))}`);
      }
      events.push(obj);
    });
  }
  return events;
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export async function startStatic(routes) {
  const table = Object.entries(routes)
    .map(([prefix, spec]) => {
      const { dir, headers = {} } = typeof spec === 'string' ? { dir: spec } : spec;
      return { prefix, dir: fromRoot(dir), headers };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);

  // Requests per path, so a test can tell that a file was downloaded once (a page's own
  // resource events count a fetch a preload served too).
  const hits = new Map();
  const server = http.createServer(async (req, res) => {
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'Cache-Control': 'no-store', ...headers });
      res.end(body);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
      const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
      const route = table.find((r) => pathname.startsWith(r.prefix));
      if (!route) return send(404, 'no route');
      let rel = pathname.slice(route.prefix.length);
      if (rel === '' || rel.endsWith('/')) rel += 'index.html';
      const file = path.resolve(route.dir, rel);
      if (file !== route.dir && !file.startsWith(route.dir + path.sep)) return send(403, 'forbidden');
      let body;
      try {
        body = await fsp.readFile(file);
      } catch {
        return send(404, `not found: ${pathname}`, route.headers);
      }
      const type = MIME[path.extname(file)] ?? 'application/octet-stream';
      send(200, req.method === 'HEAD' ? undefined : body, { 'Content-Type': type, ...route.headers });
    } catch (e) {
      send(500, String(e));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchBrowser(options = {}) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.FOOTFALL_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ...options,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}

export function watchPageErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.stack || e.message || e}`));
  return errors;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 50, message } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = message ?? 'condition not met';
      const err = new Error(`waitFor timed out after ${timeoutMs} ms: ${why}${lastError ? `\nlast error: ${lastError.stack ?? lastError}` : ''}`);
      throw err;
    }
    await sleep(intervalMs);
  }
}

export async function waitForEvents(ingest, predicate = () => true, { count = 1, timeoutMs = 10_000 } = {}) {
  let seen = [];
  try {
    return await waitFor(
      async () => {
        seen = (await ingest.events()).filter(predicate);
        return seen.length >= count ? seen : null;
      },
      { timeoutMs, intervalMs: 100 },
    );
  } catch (e) {
    e.message = `waited for ${count} matching event(s), saw ${seen.length}: ${e.message}\ningest stderr (tail):\n${ingest.stderr?.().slice(-2000) ?? ''}`;
    throw e;
  }
}

export async function settle(ingest, { quietMs = 750, timeoutMs = 10_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let since = Date.now();
  for (;;) {
    let events;
    try {
      events = await ingest.events();
    } catch (e) {
      // A line being appended right now can look torn; read again.
      if (Date.now() > deadline) throw e;
      await sleep(50);
      continue;
    }
    if (events.length !== last) {
      last = events.length;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return events;
    }
    if (Date.now() > deadline) throw new Error(`ingest output kept changing for ${timeoutMs} ms`);
    await sleep(100);
  }
}
