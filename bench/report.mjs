//! Turns results/sdk.json and results/ingest.json (one `make bench` run) into the one table of
//! issue 5: our figure, the peer or baseline figure from the same run, their ratio, the budget and
//! pass/fail. Prints it and writes results/latest.md (dated). With BENCH_STRICT=1 it exits 1 when a
//! budget fails (benchmarks are not part of `make test`; the size budget is, via size-check.sh).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DIR = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
const read = (f) => {
  try { return JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')); } catch { return null; }
};
const sdk = read('sdk.json')?.summary;
const ing = read('ingest.json');
const cg = read('callgrind.json');

const KB = 1024;
const MIB = 1024 * 1024;
// Every formatter says "n/a" for a figure that was not measured (never a made-up number).
const na = (f) => (v) => (typeof v === 'number' && Number.isFinite(v) ? f(v) : 'n/a');
const fmtKB = na((b) => `${(b / KB).toFixed(1)} KB`);
const fmtMs = na((ms) => (ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`));
const fmtN = na((n) => Math.round(n).toLocaleString('en-US'));
const fmtMB = na((b) => `${(b / MIB).toFixed(1)} MiB`);
const fmtUs = na((us) => (us >= 100 ? `${us.toFixed(0)} µs` : us >= 1 ? `${us.toFixed(2)} µs` : `${(us * 1000).toFixed(0)} ns`));
const x = na((r) => (r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(1)}×`));
/** "N× better than P" when ours is better (ratio ≥ 1), else "N× worse than P" with the inverse. */
const cmp = (ratio, better, worse, peer) => (ratio >= 1 ? `${x(ratio)} ${better} ${peer}` : `${x(1 / ratio)} ${worse} ${peer}`).trim();

const rows = [];
const verdicts = [];
function row(area, what, ours, peer, ratio, budget = '', pass) {
  let verdict = '';
  if (pass === true) verdict = 'PASS';
  if (pass === false) verdict = '**FAIL**';
  if (pass !== undefined) verdicts.push({ what: `${area}: ${what}`, pass });
  rows.push([area, what, ours, peer, ratio, budget, verdict]);
}

if (sdk) {
  const ours = sdk.subjects.filter((s) => s.ours);
  const peers = sdk.subjects.filter((s) => s.peer);
  const label = (s) => ({ 'footfall-esm': 'npm', 'footfall-tag': 'tag', 'footfall-pkg': 'sdk/pkg' }[s.id] || s.name);
  const peerList = (f) => peers.map((p) => `${p.name} ${f(p)}`).join('; ');
  const N = sdk.events;
  // The empty page (no SDK) is the harness floor: navigation + an inline module script, and an
  // empty `track` function. Shown so a figure can be read as "floor + what the SDK adds".
  const floor = sdk.subjects.find((s) => s.baseline);
  const overFloor = (v, k) => (floor ? ` (floor ${fmtMs(floor[k])} + ${fmtMs(v - floor[k])})` : '');

  // Download size
  const smallestPeer = peers.reduce((a, b) => (a && a.download.gzip <= b.download.gzip ? a : b), null);
  for (const s of ours) {
    const d = s.download;
    row('SDK', `download, ${label(s)} user: ${d.files.map((f) => path.basename(f)).join(' + ')} — gzip -9 (raw, brotli)`,
      `${fmtKB(d.gzip)} (${fmtKB(d.raw)}, ${fmtKB(d.brotli)})`,
      peerList((p) => `${fmtKB(p.download.gzip)} (${fmtKB(p.download.raw)}, ${fmtKB(p.download.brotli)})`),
      smallestPeer ? cmp(smallestPeer.download.gzip / d.gzip, 'smaller than', 'larger than', smallestPeer.name) : '',
      '≤ 15 KB gzip', d.gzip <= 15 * KB);
  }
  // Ready: over loopback (the budget), then the same loads over an emulated link (sdk.bench.mjs
  // NET), where download sizes and waterfalls cost what they cost a visitor. Results without a
  // figure (older runs had no emulated loads) show no row.
  const readyRows = (k, how, note, budget, pass) => {
    const fastest = peers.reduce((a, b) => (a && a[k] <= b[k] ? a : b), null);
    for (const s of ours) {
      if (!Number.isFinite(s[k])) continue;
      row('SDK', `navigation start → ready${how}, ${label(s)} (median of ${sdk.loads} cold loads${note})`,
        `${fmtMs(s[k])}${overFloor(s[k], k)}`,
        peerList((p) => fmtMs(p[k])),
        fastest ? cmp(fastest[k] / s[k], 'sooner than', 'later than', fastest.name) : '',
        budget, pass && pass(s[k]));
    }
  };
  readyRows('readyMs', '', '; floor = empty page', '≤ 50 ms', (ms) => ms <= 50);
  if (sdk.net) readyRows('readyNetMs', ` over an emulated ${sdk.net.rttMs} ms round trip, ${sdk.net.kbit / 1000} Mbit/s link`, '', 'info');
  for (const s of ours) {
    const tl = s.readyTimeline || {};
    const marks = Object.entries(tl).filter(([, v]) => Number.isFinite(v)).sort((a, b) => a[1] - b[1])
      .map(([k, v]) => `${k} ${fmtMs(v)}`);
    if (marks.length) row('SDK', `  … where the time to ready goes, ${label(s)} (medians, ms since navigation start)`, `${marks.join(' → ')} → ready ${fmtMs(s.readyMs)}`, '', '', 'info');
  }
  // Loop
  const fastestLoop = peers.reduce((a, b) => (a && a.loopMs <= b.loopMs ? a : b), null);
  for (const s of ours) {
    const perCall = (s.loopMs * 1000) / N;
    row('SDK', `${fmtN(N)} × track('evt', {i}) in one loop, ${label(s)}: wall time (per call; main-thread CPU of the loop), median of ${sdk.loops}`,
      `${fmtMs(s.loopMs)} (${fmtUs(perCall)}; CPU ${fmtMs(s.loopCpuMs)})${floor ? `; empty function ${fmtMs(floor.loopMs)}` : ''}`,
      peerList((p) => `${fmtMs(p.loopMs)} (${fmtUs((p.loopMs * 1000) / N)}; CPU ${fmtMs(p.loopCpuMs)})`),
      fastestLoop ? cmp(fastestLoop.loopMs / s.loopMs, 'faster than', 'slower than', fastestLoop.name) : '',
      '≤ 20 ms', s.loopMs <= 20);
    if (fastestLoop) {
      row('SDK', `  … per call against the fastest peer (${fastestLoop.name}), ${label(s)}`,
        fmtUs(perCall), fmtUs((fastestLoop.loopMs * 1000) / N),
        cmp(fastestLoop.loopMs / s.loopMs, 'faster', 'slower', ''), '≥ 10× faster', fastestLoop.loopMs / s.loopMs >= 10);
    }
  }
  const fastestBusy = peers.reduce((a, b) => (a && a.busyMs <= b.busyMs ? a : b), null);
  for (const s of ours) {
    row('SDK', `main-thread CPU, loop start → all delivered, ${label(s)} (long tasks)`,
      `${fmtMs(s.busyMs)} (${fmtMs(s.longTaskMs ?? NaN)})`,
      peerList((p) => `${fmtMs(p.busyMs)} (${fmtMs(p.longTaskMs ?? NaN)})`),
      fastestBusy ? cmp(fastestBusy.busyMs / s.busyMs, 'less than', 'more than', fastestBusy.name) : '', 'info');
  }
  for (const s of ours) {
    row('SDK', `heap growth after the loop / retained after delivery + GC, ${label(s)} (JS heap + wasm/ArrayBuffers)`,
      `${fmtMB(s.heapAfterLoop)} / ${fmtMB(s.heapRetained)}`,
      peerList((p) => `${fmtMB(p.heapAfterLoop)} / ${fmtMB(p.heapRetained)}`), '', 'info');
  }
  for (const s of ours) {
    // Per delivered event too: an SDK that drops events also sends fewer bytes.
    const perEvent = (v) => (v.deliveredMin > 0 ? v.bytesSent / v.deliveredMin : NaN);
    const leanest = peers.reduce((a, b) => (a && perEvent(a) <= perEvent(b) ? a : b), null);
    row('SDK', `on the wire after the loop, ${label(s)}: requests, bytes sent (headers + bodies), bytes per delivered event`,
      `${fmtN(s.requests)} req, ${fmtKB(s.bytesSent)}, ${fmtN(perEvent(s))} B/event`,
      peerList((p) => `${fmtN(p.requests)} req, ${fmtKB(p.bytesSent)}, ${fmtN(perEvent(p))} B/event`),
      leanest ? cmp(perEvent(leanest) / perEvent(s), 'fewer bytes/event than', 'more bytes/event than', leanest.name) : '', 'info');
  }
  for (const s of ours) {
    const all = s.deliveredMin === N && s.dupIdsMax === 0;
    row('SDK', `events that reached the collector, ${label(s)}, maxQueueSize 10,000 (worst of ${sdk.loops} runs; duplicates)`,
      `${fmtN(s.deliveredMin)} / ${fmtN(N)}${s.deliveredAfterCloseMin !== s.deliveredMin ? ` (${fmtN(s.deliveredAfterCloseMin)} incl. page-hide beacon)` : ''}; ${s.dupIdsMax} dup`,
      peerList((p) => `${fmtN(p.deliveredMin)} / ${fmtN(N)}`), '', `all ${fmtN(N)}, exactly once`, all);
  }
}

if (ing) {
  const pk = ing.peak;
  const t = pk.track;
  const b = pk.batch100;
  const share = `${ing.conns} conns`;
  const rounds = (r) => (r.rounds ? ` (rounds ${r.rounds.map(fmtN).join(', ')})` : '');
  row('Ingest', `POST /v1/track, 1 message, ${share}: requests/s, best of 2 alternating rounds`,
    `${fmtN(t.ingest.rps)}${rounds(t.ingest)}`, `nginx ${fmtN(t.nginx.rps)}${rounds(t.nginx)}`,
    `${((t.ingest.rps / t.nginx.rps) * 100).toFixed(0)} % of nginx`, '≥ 60 % of nginx', t.ingest.rps >= 0.6 * t.nginx.rps);
  row('Ingest', '  … p50 / p99 latency', `${fmtMs(t.ingest.p50ms)} / ${fmtMs(t.ingest.p99ms)}`,
    `nginx ${fmtMs(t.nginx.p50ms)} / ${fmtMs(t.nginx.p99ms)}`, '', 'info');
  row('Ingest', '  … server CPU per request', fmtUs(t.ingest.cpuUsPerEvent), `nginx ${fmtUs(t.nginx.cpuUsPerEvent)}`,
    `${x(t.ingest.cpuUsPerEvent / t.nginx.cpuUsPerEvent)} nginx's`, 'info');
  const c = ing.ceiling;
  if (c) {
    const pct = (r) => `${((r.ingest.rps / r.nginx.rps) * 100).toFixed(0)} % of nginx`;
    row('Ingest', `  … where the limit is: GET /healthz (hyper + tokio + axum router; no body, no sink), ${share}`,
      `${fmtN(c.healthz.ingest.rps)} req/s; ${fmtUs(c.healthz.ingest.cpuUsPerEvent)} CPU/req`,
      `nginx ${fmtN(c.healthz.nginx.rps)}; ${fmtUs(c.healthz.nginx.cpuUsPerEvent)}`, pct(c.healthz), 'info');
    row('Ingest', `  … where the limit is: POST /v1/track with --fsync never (no fdatasync), ${share}`,
      `${fmtN(c.trackNoSync.ingest.rps)} req/s; ${fmtUs(c.trackNoSync.ingest.cpuUsPerEvent)} CPU/req`,
      `nginx ${fmtN(c.trackNoSync.nginx.rps)}; ${fmtUs(c.trackNoSync.nginx.cpuUsPerEvent)}`, pct(c.trackNoSync), 'info');
  }
  row('Ingest', `POST /v1/batch, 100 messages, ${share}: events/s (requests/s, rounds)`,
    `${fmtN(b.ingest.eps)} (${fmtN(b.ingest.rps)} req/s${rounds(b.ingest).replace(' (', '; ').replace(')', '')})`,
    `nginx ${fmtN(b.nginx.eps)} (${fmtN(b.nginx.rps)} req/s${rounds(b.nginx).replace(' (', '; ').replace(')', '')})`,
    `${((b.ingest.rps / b.nginx.rps) * 100).toFixed(0)} % of nginx`, '≥ 500,000 events/s', b.ingest.eps >= 500_000);
  row('Ingest', '  … p50 / p99 latency', `${fmtMs(b.ingest.p50ms)} / ${fmtMs(b.ingest.p99ms)}`,
    `nginx ${fmtMs(b.nginx.p50ms)} / ${fmtMs(b.nginx.p99ms)}`, '', 'info');
  for (const [key, name] of [['track', '/v1/track'], ['batch100', '/v1/batch ×100']]) {
    const h = ing.half[key];
    const achieved = h.ingest.rps / h.ingest.targetRps;
    row('Ingest', `p99 at half the peak rate, ${name} (target ${fmtN(h.ingest.targetRps)} req/s; achieved)`,
      `${fmtMs(h.ingest.p99ms)} (${fmtN(h.ingest.rps)} req/s)`, `nginx ${fmtMs(h.nginx.p99ms)} (${fmtN(h.nginx.rps)} req/s)`,
      '', '< 20 ms', h.ingest.p99ms < 20 && achieved >= 0.9 && h.ingest.errors === 0);
  }
  row('Ingest', 'RSS idle after start (max of runs)', fmtMB(ing.idleRssKiB * 1024), '', '', '< 30 MiB', ing.idleRssKiB * 1024 < 30 * MIB);
  row('Ingest', 'RSS peak, VmHWM (max of runs)', fmtMB(ing.peakRssKiB * 1024), '', '', '< 150 MiB', ing.peakRssKiB * 1024 < 150 * MIB);
  const curve = (list, key) => list.map((r) => `${r[key]}: ${fmtN(r.eps)} ev/s, ${fmtUs(r.cpuUsPerEvent)} CPU/ev, p99 ${fmtMs(r.p99ms)}`).join('; ');
  row('Ingest', `scaling: events/s vs batch size (/v1/batch, ${share})`, curve(ing.sweepBatch, 'batch'), '', '', 'flat cost/event (info)');
  row('Ingest', 'scaling: events/s vs connections (/v1/batch ×100)', curve(ing.sweepConns, 'conns'), '', '', 'flat cost/event (info)');
  const errs = [t, b].flatMap((p) => [p.ingest, p.nginx]).reduce((a, r) => a + r.errors, 0)
    + ing.sweepBatch.concat(ing.sweepConns).reduce((a, r) => a + r.errors, 0);
  row('Ingest', 'every acknowledged event in the NDJSON; wrk errors (non-2xx, timeouts)',
    ing.lost.length ? `LOST in ${ing.lost.length} runs` : 'all written', '', '', `${errs} errors`, ing.lost.length === 0 && errs === 0);
}

if (cg) {
  // A mode not measured (`ingest.callgrind.mjs --only`) reads n/a, like any figure not measured.
  const by = (mode) => cg.modes.find((m) => m.mode === mode) || {};
  const t = by('track');
  const b = by('batch');
  row('Ingest', 'user-space instructions per event, callgrind (repeatable; kernel work such as fsync not counted)',
    `/v1/track ${fmtN(t.irPerEvent)}; /v1/batch ×100 ${fmtN(b.irPerEvent)} (${fmtN(b.irPerEvent / b.bytesPerEvent)} per JSON byte)`,
    '', '', 'info');
}

const date = (sdk && sdk.date) || (ing && ing.date) || new Date().toISOString();
const head = [];
head.push(`## Footfall benchmarks — ${date.slice(0, 16).replace('T', ' ')} UTC`);
head.push('');
const env = [`${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}): the load generator (wrk), the servers and Chromium share them`];
if (ing) env.push(`load average at ingest start ${ing.loadavg.map((l) => l.toFixed(2)).join(' ')}`, `${ing.wrk}`, `${ing.nginx} (\`return 204;\`, bench/nginx.conf)`, `ingest \`--fsync always\`, ${ing.duration} s per run`);
if (sdk) env.push(`Chromium ${sdk.chromium}`, `peers from npm: ${sdk.subjects.filter((s) => s.peer).map((s) => `${s.name} ${s.version}`).join(', ')}`);
head.push(env.join('; ') + '.');
head.push('');
const table = [
  '| area | measurement | Footfall | peer / baseline (same run) | ratio | budget | result |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.map((c) => String(c).replaceAll('|', '\\|')).join(' | ')} |`),
];
const failed = verdicts.filter((v) => !v.pass);
const tail = ['', `Budgets: ${verdicts.length - failed.length} pass, ${failed.length} fail${failed.length ? ` (${failed.map((f) => f.what).join('; ')})` : ''}.`];
if (!sdk) tail.push('SDK benchmark: no results (it failed or did not run).');
if (!ing) tail.push('Ingest benchmark: no results (it failed or did not run).');
const md = [...head, ...table, ...tail].join('\n') + '\n';
process.stdout.write(md);
fs.mkdirSync(DIR, { recursive: true });
fs.writeFileSync(path.join(DIR, 'latest.md'), md);

// The README keeps the latest full run's table (between its markers), so it never goes stale.
// A partial run (BENCH_ONLY) leaves it alone: the table would lack half its rows.
const README = path.join(DIR, '..', '..', 'README.md');
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
if (sdk && ing && fs.existsSync(README)) {
  const text = fs.readFileSync(README, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) {
    const section = md.replace(/^## Footfall benchmarks — (.*)\n/, 'Measured $1 by `make bench`.\n').trim();
    fs.writeFileSync(README, `${text.slice(0, a + START.length)}\n${section}\n${text.slice(b)}`);
    process.stderr.write('[bench] README.md benchmark table updated\n');
  }
}
if (process.env.BENCH_STRICT === '1' && failed.length) process.exit(1);
