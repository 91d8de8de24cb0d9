//! Where navigation start -> ready goes, per step, A/B: each variant (a dist dir; a harness mode;
//! a browser flag set) gets its own static server (bench/pages or --pages-dir, plus /dist/), and
//! loads alternate variant by variant, a fresh context each, as in sdk.bench.mjs. Per load it
//! reads the document's navigation timing, the .js/.wasm resource timings, every
//! performance.mark (an instrumented build can add its own) and `window.__ready`; it prints the
//! median and quartiles of each step, computed per load (the machine is shared: differences of
//! medians are noisier than medians of differences), and writes every load to --out.
//!
//! node ready-probe.mjs --loads 15 --dists A=/tmp/distA,B=../npm/dist
//!   [--pages empty.html,footfall-esm.html,footfall-tag.html] [--pages-dir DIR]
//!   [--modes eval:0,wff:0]  wait with evaluate polling (the bench's) or waitForFunction (before
//!                           90f7f4a); `:N` waits N ms between newPage and goto
//!   [--browsers nopre,def]  nopre: --disable-features=PreloadTopChromeWebUI (the bench's)
//!   [--trace]               Chrome trace of the last round, /tmp/ready-probe-trace-*.json
//!   [--net RTT[:KBIT]]      emulate a network: RTT ms added per request, optional Kbit/s each way
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { staticServer } from './lib/servers.mjs';
import { REPO, startIngest } from './lib/ingest.mjs';
import { BASE_ARGS, BENCH_ARGS, emulateLink } from './lib/browser.mjs';

const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i < 0 ? d : (process.argv[i + 1] ?? true); };
const LOADS = Number(arg('loads', 7));
const PAGES = String(arg('pages', 'empty.html,footfall-esm.html,footfall-tag.html')).split(',');
const PAGES_DIR = path.resolve(String(arg('pages-dir', path.join(REPO, 'bench/pages'))));
const DISTS = String(arg('dists', `cur=${path.join(REPO, 'npm/dist')}`)).split(',').map((x) => x.split('='));
const MODES = String(arg('modes', 'eval:0')).split(',').map((m) => { const [wait, settle] = m.split(':'); return { wait, settle: Number(settle || 0), key: m }; });
const FLAGSETS = { def: BASE_ARGS, nopre: BENCH_ARGS };
const BROWSERS = String(arg('browsers', 'nopre')).split(',');
const TRACE = arg('trace', false);
// --net RTT_MS[:KBIT]: Chromium's network emulation (CDP Network.emulateNetworkConditions), so a
// waterfall costs what it would over a real link instead of loopback's ~0 ms.
const NET = arg('net', false) ? (([rttMs, kbit]) => ({ rttMs, kbit }))(String(arg('net')).split(':').map(Number)) : null;
const OUT = String(arg('out', path.join(os.tmpdir(), 'ready-probe.json')));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quant = (xs, p) => { const v = xs.filter(Number.isFinite).sort((a, b) => a - b); if (!v.length) return NaN; const i = (v.length - 1) * p; return (v[Math.floor(i)] + v[Math.ceil(i)]) / 2; };

const servers = {};
for (const [name, dir] of DISTS) servers[name] = await staticServer({ '/pages/': PAGES_DIR, '/dist/': path.resolve(dir) });
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ready-probe-'));
const ing = await startIngest({ dataDir, fsync: 'always' });
const browsers = {};
for (const b of BROWSERS) {
  browsers[b] = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: FLAGSETS[b],
  });
}
const UA = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browsers[BROWSERS[0]].version()} Safari/537.36`;
const rows = [];
try {
  for (let r = 0; r < LOADS; r++) {
    for (const pg of PAGES) for (const [dn] of DISTS) for (const mode of MODES) for (const bn of BROWSERS) {
      const browser = browsers[bn];
      const context = await browser.newContext({ userAgent: UA });
      const page = await context.newPage();
      const trace = TRACE && r === LOADS - 1;
      if (trace) {
        await browser.startTracing(page, { path: path.join(os.tmpdir(), `ready-probe-trace-${dn}-${mode.key}-${bn}-${pg}.json`),
          categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'v8.wasm', 'disabled-by-default-v8.compile',
            'blink', 'loading', 'navigation', 'blink.user_timing', 'toplevel', 'browser', 'content'] });
      }
      if (NET) await emulateLink(context, page, NET);
      if (mode.settle) await sleep(mode.settle);
      await page.goto(`${servers[dn].origin}/pages/${pg}?api=${encodeURIComponent(ing.origin)}`, { waitUntil: 'commit' });
      if (mode.wait === 'wff') await page.waitForFunction(() => window.__ready !== undefined, null, { timeout: 30000, polling: 25 });
      else while ((await page.evaluate(() => window.__ready)) === undefined) await sleep(25);
      if (trace) { await sleep(300); await browser.stopTracing(); }
      const t = await page.evaluate(() => {
        const o = { ready: window.__ready };
        const n = performance.getEntriesByType('navigation')[0];
        for (const k of ['requestStart', 'responseStart', 'responseEnd', 'domInteractive', 'domContentLoadedEventStart', 'loadEventStart']) o['doc.' + k] = n[k];
        for (const e of performance.getEntriesByType('resource')) {
          const f = new URL(e.name).pathname.split('/').pop();
          if (!/\.(js|wasm)$/.test(f)) continue;
          const k = f.endsWith('.wasm') ? 'wasm' : 'js';
          for (const p of ['startTime', 'requestStart', 'responseStart', 'responseEnd']) o[`${k}.${p}`] = e[p];
        }
        for (const e of performance.getEntriesByType('mark')) o['mark.' + e.name] = e.startTime;
        return o;
      });
      rows.push({ page: pg, variant: `${dn}/${mode.key}/${bn}`, load: r, t });
      await context.close();
    }
  }
} finally {
  for (const b of Object.values(browsers)) await b.close();
  await ing.stop();
  for (const s of Object.values(servers)) await s.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
fs.writeFileSync(OUT, JSON.stringify(rows, null, 1));

// Steps, each computed per load: [label, to, from] (from null: since navigation start).
const STEPS = [
  ['document TTFB', 'doc.responseStart', 'doc.requestStart'], ['document responseEnd', 'doc.responseEnd', null],
  ['doc responseEnd -> domInteractive', 'doc.domInteractive', 'doc.responseEnd'],
  ['JS request created', 'js.startTime', null], ['JS created -> sent', 'js.requestStart', 'js.startTime'],
  ['JS TTFB', 'js.responseStart', 'js.requestStart'], ['JS responseEnd', 'js.responseEnd', null],
  ['JS responseEnd -> wasm request created', 'wasm.startTime', 'js.responseEnd'],
  ['wasm created -> sent', 'wasm.requestStart', 'wasm.startTime'], ['wasm TTFB', 'wasm.responseStart', 'wasm.requestStart'],
  ['wasm created -> responseEnd', 'wasm.responseEnd', 'wasm.startTime'],
  ['wasm responseEnd -> ready', 'ready', 'wasm.responseEnd'], ['JS responseEnd -> ready', 'ready', 'js.responseEnd'],
  ['ready', 'ready', null],
];
for (const pg of PAGES) for (const v of [...new Set(rows.map((x) => x.variant))]) {
  const ts = rows.filter((x) => x.page === pg && x.variant === v).map((x) => x.t);
  console.log(`\n== ${pg} [${v}] n=${ts.length}  ready: ${ts.map((t) => t.ready.toFixed(0)).join(' ')}`);
  const marks = [...new Set(ts.flatMap((t) => Object.keys(t).filter((k) => k.startsWith('mark.'))))]
    .sort((a, b) => quant(ts.map((t) => t[a]), 0.5) - quant(ts.map((t) => t[b]), 0.5));
  const steps = [...STEPS, ...marks.map((m, i) => [`${i ? marks[i - 1].slice(5) : 'nav'} -> ${m.slice(5)}`, m, i ? marks[i - 1] : null])];
  for (const [label, to, from] of steps) {
    const d = ts.map((t) => (from ? t[to] - t[from] : t[to]));
    if (!d.some(Number.isFinite)) continue;
    console.log(`  ${label.padEnd(40)} median ${quant(d, 0.5).toFixed(1).padStart(6)}   p25 ${quant(d, 0.25).toFixed(1).padStart(6)}   p75 ${quant(d, 0.75).toFixed(1).padStart(6)}`);
  }
}
