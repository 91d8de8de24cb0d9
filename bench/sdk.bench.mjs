//! SDK benchmark (issue 5): Footfall (npm ESM and script tag) against posthog-js and
//! @segment/analytics-next in one real Chromium (/usr/bin/chromium via playwright-core), same run.
//!
//! Per subject:
//!  - download: every script/wasm the page fetched from our static server, raw / gzip -9 / brotli;
//!  - ready: ms from navigation start (performance.timeOrigin) to the SDK's own ready, median of
//!    LOADS fresh-context loads (cold cache: every load is a first visit); then as many again over
//!    an emulated link (NET: Chromium's network emulation), where a request costs a round trip
//!    and bytes cost time, as they do for a visitor and do not over loopback;
//!  - 10,000 `track('evt', {i})` calls in one synchronous loop: wall time of the loop (median of
//!    LOOPS fresh pages), plus the main thread's total busy time (CDP Performance TaskDuration) from
//!    just before the loop until delivery settled, since peers defer part of their work;
//!  - heap (CDP Runtime.getHeapUsage): growth right after the loop, and what stays after delivery
//!    and a forced GC (CDP HeapProfiler.collectGarbage), JS heap + ArrayBuffer/wasm backing stores;
//!  - after the loop: requests and bytes to the collector (Playwright request sizes: headers +
//!    bodies, both directions), and how many of the 10,000 events arrived — Footfall's counted in
//!    the real ingest's NDJSON, the peers' in the counting sink's decoded bodies.
//! Runs are interleaved across subjects so drift hits all of them alike. Writes results/sdk.json.
//!
//! Usage: node sdk.bench.mjs [--loads 5] [--loops 3] [--only footfall-esm,posthog] [--profile]
//! (`--loads 1 --loops 0 --profile` only profiles, into results/sdk-profile.json + *.cpuprofile)

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';
import { staticServer, countingSink } from './lib/servers.mjs';
import { REPO, startIngest, countDelivered, ingestBin } from './lib/ingest.mjs';
import { BENCH_ARGS, emulateLink } from './lib/browser.mjs';

const BENCH = path.join(REPO, 'bench');
// The npm package's build output; FOOTFALL_NPM_DIST points at another build (e.g. a trial copy).
const DIST = path.resolve(process.env.FOOTFALL_NPM_DIST || path.join(REPO, 'npm', 'dist'));
const N = 10_000;

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}
const LOADS = Number(arg('loads', 5));
const LOOPS = Number(arg('loops', 3));
const ONLY = arg('only', '') ? String(arg('only')).split(',') : null;
const PROFILE = Boolean(arg('profile', false));
// The emulated link of the second set of ready loads: a round trip added to every request, and
// the bandwidth each way (CDP Network.emulateNetworkConditions).
const NET = { rttMs: 100, kbit: 10_000 };
let USER_AGENT;
const log = (...a) => console.error('[sdk-bench]', ...a);

const SUBJECTS = [
  { id: 'footfall-esm', name: 'Footfall (npm ESM)', page: 'footfall-esm.html', collector: 'ingest', ours: true,
    needs: ['index.js', 'footfall_bg.wasm'] },
  { id: 'footfall-tag', name: 'Footfall (script tag)', page: 'footfall-tag.html', collector: 'ingest', ours: true,
    needs: ['footfall.js', 'footfall_bg.wasm'] },
  { id: 'posthog', name: 'posthog-js', page: 'posthog.html', collector: 'sink', peer: true,
    version: pkgVersion('posthog-js') },
  { id: 'segment', name: '@segment/analytics-next', page: 'segment.html', collector: 'sink', peer: true,
    version: pkgVersion('@segment/analytics-next') },
  // Not run by default (only with --only footfall-pkg): the SDK straight from sdk/pkg.
  { id: 'footfall-pkg', name: 'Footfall (sdk/pkg)', page: 'footfall-pkg.html', collector: 'ingest', ours: true,
    optIn: true },
  // The harness floor: an inline module script and an empty `track` — what every figure sits on.
  { id: 'empty', name: 'empty page', page: 'empty.html', collector: 'sink', baseline: true },
].filter((s) => (ONLY ? ONLY.includes(s.id) : !s.optIn));

function pkgVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(BENCH, 'node_modules', name, 'package.json'), 'utf8')).version;
}

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sizes(buf) {
  const gzip = execFileSync('gzip', ['-9', '-n', '-c'], { input: buf, maxBuffer: 1 << 28 }).length;
  const brotli = zlib.brotliCompressSync(buf, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length },
  }).length;
  return { raw: buf.length, gzip, brotli };
}

/** Bundles the peers the way an npm user's bundler would: esbuild, minified, ESM with code
 * splitting (their lazy chunks stay lazy). */
async function buildPeers(outdir) {
  fs.rmSync(outdir, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: [path.join(BENCH, 'pages/posthog-entry.js'), path.join(BENCH, 'pages/segment-entry.js')],
    bundle: true, splitting: true, format: 'esm', minify: true, target: 'es2020', platform: 'browser',
    outdir, define: { 'process.env.NODE_ENV': '"production"' }, logLevel: 'warning',
  });
}

async function main() {
  const missing = SUBJECTS.flatMap((s) => (s.needs || []).map((f) => path.join(DIST, f)).filter((f) => !fs.existsSync(f)));
  if (missing.length) throw new Error(`missing build artefacts: ${missing.join(', ')} (run scripts/bench.sh, which builds them)`);
  if (SUBJECTS.some((s) => s.collector === 'ingest') && !fs.existsSync(ingestBin())) {
    throw new Error(`missing ${ingestBin()} (cargo build --release -p footfall-ingest)`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'footfall-sdk-bench-'));
  const buildDir = path.join(BENCH, '.build');
  await buildPeers(buildDir);

  const web = await staticServer({
    '/pages/': path.join(BENCH, 'pages'),
    '/build/': buildDir,
    '/dist/': DIST,
    '/pkg/': path.join(REPO, 'sdk', 'pkg'),
  });
  const sink = await countingSink();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: BENCH_ARGS,
  });
  const browserVersion = browser.version();
  USER_AGENT = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browserVersion} Safari/537.36`;
  const results = Object.fromEntries(SUBJECTS.map((s) => [s.id, { ...s, loads: [], netLoads: [], loops: [] }]));
  let ingestRun = 0;

  // A collector per page: a fresh ingest (own data dir) for Footfall, the reset sink for peers.
  async function collectorFor(s) {
    if (s.collector === 'sink') {
      sink.reset();
      return { origin: sink.origin, delivered: () => ({ lines: sink.stats.events, distinct: NaN, dupIds: NaN, undecoded: sink.stats.undecoded }), stop: async () => {} };
    }
    const dataDir = path.join(tmp, `ingest-${++ingestRun}`);
    const ing = await startIngest({ dataDir, fsync: 'always' });
    return { origin: ing.origin, delivered: () => countDelivered(dataDir), stop: () => ing.stop(), dataDir };
  }

  /** Opens the subject's page in a fresh context; resolves once the SDK reported ready. */
  async function openPage(s, col, { recordDownloads = false, link = null } = {}) {
    // A desktop Chrome user agent: headless Chromium's "HeadlessChrome" makes PostHog drop every
    // event as a bot. The same UA for every subject.
    const context = await browser.newContext({ userAgent: USER_AGENT });
    const page = await context.newPage();
    if (link) await emulateLink(context, page, link);
    const downloads = [];
    const net = { requests: 0, inflight: 0, sent: 0, received: 0, failed: 0, lastActivity: Date.now(), scripts: 0 };
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)));
    page.on('request', (req) => {
      if (!req.url().startsWith(col.origin)) return;
      net.requests += 1; net.inflight += 1; net.lastActivity = Date.now();
      if (req.resourceType() === 'script') net.scripts += 1;
    });
    const settle = async (req, failed) => {
      if (!req.url().startsWith(col.origin)) return;
      net.inflight -= 1; net.lastActivity = Date.now();
      if (failed) { net.failed += 1; return; }
      try {
        const z = await req.sizes();
        net.sent += z.requestHeadersSize + z.requestBodySize;
        net.received += z.responseHeadersSize + z.responseBodySize;
      } catch { /* page closed */ }
    };
    page.on('requestfinished', (r) => settle(r, false));
    page.on('requestfailed', (r) => settle(r, true));
    if (recordDownloads) {
      page.on('response', async (resp) => {
        const u = new URL(resp.url());
        if (u.origin !== web.origin || u.pathname.startsWith('/pages/')) return;
        // Bodies only here; sizes() (gzip -9 in a child, brotli 11: synchronous) runs after the
        // load: run now, it blocked this process's event loop, which serves the page's next file.
        try { downloads.push({ path: u.pathname, body: await resp.body() }); } catch { /* ignore */ }
      });
    }
    await page.goto(`${web.origin}/pages/${s.page}?api=${encodeURIComponent(col.origin)}`, { waitUntil: 'commit' });
    // Polled with a plain evaluate, not waitForFunction: that one first injects Playwright's
    // injected script (~10 ms of main-thread CPU, ~100 ms wall when the machine is busy; Chrome
    // trace) into the page while it is still loading. The figure is the page's own
    // performance.now(), so the polling interval does not add to it.
    let readyMs;
    for (const t0 = Date.now(); (readyMs = await page.evaluate(() => window.__ready)) === undefined; await sleep(25)) {
      if (Date.now() - t0 > 30_000) throw new Error(`${s.id}: not ready after 30 s`);
    }
    // Where the time to ready goes: the document, then each script/wasm fetch (ms since navigation
    // start), so the owners can tell download, waterfall and init apart.
    const timeline = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const t = { documentEnd: nav ? nav.responseEnd : NaN, domInteractive: nav ? nav.domInteractive : NaN };
      for (const r of performance.getEntriesByType('resource')) {
        const name = new URL(r.name).pathname.split('/').pop();
        if (!/\.(js|wasm)$/.test(name)) continue;
        t[`${name} start`] = r.startTime;
        t[`${name} end`] = r.responseEnd;
      }
      return t;
    });
    return { context, page, net, downloads, pageErrors, readyMs, timeline };
  }

  async function loadRun(s, first, link = null) {
    const col = await collectorFor(s);
    try {
      const p = await openPage(s, col, { recordDownloads: first, link });
      if (first) await sleep(1000); // let lazy chunks finish so the download list is complete
      results[s.id][link ? 'netLoads' : 'loads'].push({ readyMs: p.readyMs, timeline: p.timeline, errors: p.pageErrors });
      if (first) results[s.id].downloads = p.downloads.map(({ path: f, body }) => ({ path: f, ...sizes(body) }));
      await p.context.close();
    } finally {
      await col.stop();
    }
  }

  async function loopRun(s, { profile = false } = {}) {
    const col = await collectorFor(s);
    try {
      const p = await openPage(s, col);
      const cdp = await p.context.newCDPSession(p.page);
      await cdp.send('Performance.enable');
      await sleep(1500); // startup traffic (pageview, remote config) settles before we count
      const delivered0 = col.delivered();
      const heap = async (gc) => {
        if (gc) { await cdp.send('HeapProfiler.collectGarbage'); await cdp.send('HeapProfiler.collectGarbage'); }
        const h = await cdp.send('Runtime.getHeapUsage');
        return { used: h.usedSize, backing: h.backingStorageSize ?? 0, total: h.usedSize + (h.backingStorageSize ?? 0) };
      };
      // ThreadTime = CPU time of the renderer's main thread (TaskDuration sums tasks across the
      // renderer's threads and can exceed wall time, so it is kept only for reference).
      const metrics = async () => {
        const m = (await cdp.send('Performance.getMetrics')).metrics;
        const get = (k) => m.find((x) => x.name === k).value * 1000;
        return { thread: get('ThreadTime'), task: get('TaskDuration'), script: get('ScriptDuration') };
      };
      const h0 = await heap(true);
      Object.assign(p.net, { requests: 0, sent: 0, received: 0, failed: 0, scripts: 0 });
      if (profile) {
        await cdp.send('Profiler.enable');
        await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
        await cdp.send('Profiler.start');
      }
      const m0 = await metrics();
      const loop = await p.page.evaluate((n) => {
        const sdk = window.__sdk; const m = window.__method;
        // Long tasks (> 50 ms) from here until delivery settles: the loop's own task plus any
        // deferred work that blocks the page (a peer may return fast and work later).
        window.__longTasks = 0;
        new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longTasks += e.duration; })
          .observe({ type: 'longtask' });
        const t0 = performance.now();
        try {
          for (let i = 0; i < n; i++) sdk[m]('evt', { i });
        } catch (e) {
          return { ms: performance.now() - t0, error: String(e) };
        }
        return { ms: performance.now() - t0 };
      }, N);
      // Main-thread CPU of the loop alone: unlike its wall time, not inflated when the shared
      // machine preempts the renderer.
      const mLoop = await metrics();
      let profileData;
      if (profile) profileData = (await cdp.send('Profiler.stop')).profile;
      const h1 = await heap(false);
      p.net.lastActivity = Math.max(p.net.lastActivity, Date.now());
      // Wait for delivery: done when every event arrived and nothing is in flight, or when the
      // collector saw no traffic for QUIET ms (longer than any subject's flush interval), capped.
      const QUIET = 5500; // > Footfall's 5 s flush interval and PostHog's 3 s
      const CAP = s.baseline ? 0 : s.peer ? 60_000 : 30_000;
      const tWait = Date.now();
      let d = col.delivered();
      while (CAP > 0) {
        await sleep(250);
        d = col.delivered();
        const arrived = d.lines - delivered0.lines;
        const quiet = Date.now() - p.net.lastActivity;
        if (arrived >= N && p.net.inflight === 0 && quiet > 300) break;
        if (p.net.inflight === 0 && quiet > QUIET) break;
        if (Date.now() - tWait > CAP) break;
      }
      const settleMs = Date.now() - tWait;
      const m1 = await metrics();
      const longTaskMs = await p.page.evaluate(() => window.__longTasks);
      const h2 = await heap(true);
      const run = {
        loopMs: loop.ms, loopCpuMs: mLoop.thread - m0.thread, loopError: loop.error, busyMs: m1.thread - m0.thread, taskMs: m1.task - m0.task,
        scriptMs: m1.script - m0.script, longTaskMs, settleMs,
        heapAfterLoop: h1.total - h0.total, heapRetained: h2.total - h0.total,
        heapAfterLoopJs: h1.used - h0.used, backingAfterLoop: h1.backing - h0.backing,
        requests: p.net.requests, bytesSent: p.net.sent, bytesReceived: p.net.received, failed: p.net.failed,
        lazyScripts: p.net.scripts,
        delivered: d.lines - delivered0.lines, distinct: d.distinct, dupIds: d.dupIds, undecoded: d.undecoded,
        errors: p.pageErrors,
      };
      await p.context.close();
      if (s.collector === 'ingest') {
        await sleep(500);
        await col.stop(); // renames .open files; counts what the page-hide beacon added too
        const after = countDelivered(col.dataDir);
        run.deliveredAfterClose = after.lines - delivered0.lines;
        run.distinctAfterClose = after.distinct;
        run.dupIdsAfterClose = after.dupIds;
      }
      if (profileData) {
        const file = path.join(BENCH, 'results', `${s.id}.cpuprofile`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, JSON.stringify(profileData));
        results[s.id].profileTop = topSelfTime(profileData, 12);
        results[s.id].profileFile = path.relative(REPO, file);
      } else {
        results[s.id].loops.push(run);
      }
      log(`${s.id}: loop ${loop.ms.toFixed(1)} ms, main-thread CPU ${(m1.thread - m0.thread).toFixed(0)} ms, delivered ${run.delivered}${loop.error ? ` ERROR ${loop.error}` : ''}`);
    } finally {
      await col.stop();
    }
  }

  try {
    for (let r = 0; r < LOADS; r++) {
      for (const s of SUBJECTS) await loadRun(s, r === 0);
    }
    log('ready times:', SUBJECTS.map((s) => `${s.id} ${results[s.id].loads.map((l) => l.readyMs.toFixed(0)).join('/')} ms`).join(', '));
    for (let r = 0; r < LOADS; r++) {
      for (const s of SUBJECTS) await loadRun(s, false, NET);
    }
    log(`ready times over ${NET.rttMs} ms RTT, ${NET.kbit / 1000} Mbit/s:`, SUBJECTS.map((s) => `${s.id} ${results[s.id].netLoads.map((l) => l.readyMs.toFixed(0)).join('/')} ms`).join(', '));
    for (let r = 0; r < LOOPS; r++) {
      for (const s of SUBJECTS) await loopRun(s);
    }
    if (PROFILE) for (const s of SUBJECTS) await loopRun(s, { profile: true });
  } finally {
    await browser.close();
    await web.close();
    await sink.close();
    fs.rmSync(tmp, { recursive: true, force: true }); // ingest data dirs, also after a failure
  }

  const summary = {
    date: new Date().toISOString(),
    chromium: browserVersion,
    events: N,
    loads: LOADS,
    loops: LOOPS,
    net: NET,
    subjects: SUBJECTS.map((s) => summarise(results[s.id])),
  };
  fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  // A profile-only run (--loops 0 --profile) must not replace the figures behind latest.md.
  const outName = PROFILE && LOOPS === 0 ? 'sdk-profile.json' : 'sdk.json';
  fs.writeFileSync(path.join(BENCH, 'results', outName), JSON.stringify({ summary, raw: results }, null, 2));
  log(`wrote bench/results/${outName}`);
}

function summarise(r) {
  const dl = r.downloads || [];
  const sum = (k) => dl.reduce((a, d) => a + d[k], 0);
  const loops = r.loops;
  const errors = [...new Set([...r.loads.flatMap((l) => l.errors), ...r.netLoads.flatMap((l) => l.errors), ...loops.flatMap((l) => l.errors),
    ...loops.map((l) => l.loopError).filter(Boolean)])];
  return {
    id: r.id, name: r.name, version: r.version, ours: Boolean(r.ours), peer: Boolean(r.peer), baseline: Boolean(r.baseline),
    download: { files: dl.map((d) => d.path), raw: sum('raw'), gzip: sum('gzip'), brotli: sum('brotli'), detail: dl },
    readyMs: median(r.loads.map((l) => l.readyMs)),
    readyAll: r.loads.map((l) => l.readyMs),
    readyNetMs: median(r.netLoads.map((l) => l.readyMs)),
    readyNetAll: r.netLoads.map((l) => l.readyMs),
    // Median of each timeline mark over the loads (marks missing in a load are skipped).
    readyTimeline: Object.fromEntries([...new Set(r.loads.flatMap((l) => Object.keys(l.timeline || {})))]
      .map((k) => [k, median(r.loads.map((l) => (l.timeline || {})[k]))])),
    loopMs: median(loops.map((l) => l.loopMs)),
    loopAll: loops.map((l) => l.loopMs),
    loopCpuMs: median(loops.map((l) => l.loopCpuMs)),
    busyMs: median(loops.map((l) => l.busyMs)),
    busyAll: loops.map((l) => l.busyMs),
    longTaskMs: median(loops.map((l) => l.longTaskMs)),
    heapAfterLoop: median(loops.map((l) => l.heapAfterLoop)),
    heapRetained: median(loops.map((l) => l.heapRetained)),
    requests: median(loops.map((l) => l.requests)),
    bytesSent: median(loops.map((l) => l.bytesSent)),
    bytesReceived: median(loops.map((l) => l.bytesReceived)),
    failedRequests: Math.max(0, ...loops.map((l) => l.failed)),
    lazyScripts: median(loops.map((l) => l.lazyScripts)),
    deliveredMin: Math.min(...loops.map((l) => l.delivered)),
    deliveredAll: loops.map((l) => l.delivered),
    deliveredAfterCloseMin: r.ours ? Math.min(...loops.map((l) => l.deliveredAfterClose)) : undefined,
    distinctMin: r.ours ? Math.min(...loops.map((l) => l.distinct)) : undefined,
    dupIdsMax: r.ours ? Math.max(...loops.map((l) => l.dupIdsAfterClose ?? l.dupIds)) : undefined,
    settleMs: median(loops.map((l) => l.settleMs)),
    errors,
    profileTop: r.profileTop,
    profileFile: r.profileFile,
  };
}

/** Self time per function from a V8 CPU profile, top `n`, in ms. */
function topSelfTime(profile, n) {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const dt = (profile.timeDeltas[i] || 0) / 1000;
    const f = node.callFrame;
    if (f.functionName === '(idle)') continue; // CDP round trips around the loop, not SDK work
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url.split('?')[0])}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) || 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([fn, ms]) => ({ fn, ms: Math.round(ms * 10) / 10, pct: Math.round((ms / total) * 1000) / 10 }));
}

main().catch((e) => {
  console.error('[sdk-bench] FAILED:', e.stack || e);
  process.exit(1);
});
