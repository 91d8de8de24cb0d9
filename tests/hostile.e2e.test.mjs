//! "SDK under a hostile page" (issue 6): the built SDK (sdk/pkg) in real headless Chromium, sending
//! to the real footfall-ingest binary, on a page that breaks what the SDK relies on — storage that
//! throws, a full quota, cookies off, junk under our storage keys, fetch/sendBeacon replaced or
//! broken, hostile event properties, floods of events. Every assertion is on the NDJSON the ingest
//! wrote, on what the page saw, and on memory measured through CDP.
//!
//! For every case: no uncaught exception or unhandled rejection reaches the page (Playwright's
//! `pageerror` plus in-page `error`/`unhandledrejection` listeners), the only thing a call may
//! throw is the documented synchronous `TypeError` for a wrong argument, and what can be delivered
//! arrives exactly once; a case that must lose data says which data and why.
//!
//! Pages: tests/pages/hostile.html + hostile.mjs (options as `opts` JSON in the query string;
//! `noinit=1` loads the SDK without init). Each test has its own ingest and browser context.
//! Run: `cd tests && node --test hostile.e2e.test.mjs` (needs `bash sdk/build.sh` and
//! `cargo build -p footfall-ingest`). Env: FOOTFALL_INGEST_BIN, FOOTFALL_SDK_PKG, FOOTFALL_CHROMIUM.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, TMP_DIR, launchBrowser, settle, startIngest, startStatic, waitFor, waitForEvents } from './lib/harness.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let browser;
let web;
let pkgSnapshot;

before(async () => {
  // Serve a snapshot of the SDK build: a rebuild of sdk/pkg during the run cannot mix two builds.
  const pkg = path.resolve(REPO_ROOT, process.env.FOOTFALL_SDK_PKG || 'sdk/pkg');
  assert.ok(fs.existsSync(path.join(pkg, 'index.js')), `${pkg}/index.js missing: run \`bash sdk/build.sh\``);
  await fsp.mkdir(TMP_DIR, { recursive: true });
  pkgSnapshot = await fsp.mkdtemp(path.join(TMP_DIR, 'pkg-'));
  await fsp.cp(pkg, pkgSnapshot, { recursive: true });
  browser = await launchBrowser();
  web = await startStatic({ '/': 'tests/pages', '/pkg/': pkgSnapshot });
});

after(async () => {
  await browser?.close();
  await web?.stop();
  if (pkgSnapshot) await fsp.rm(pkgSnapshot, { recursive: true, force: true });
});

// === helpers ===

const tracks = (events, name) => events.filter((e) => e.type === 'track' && (name === undefined || e.event === name));
const byEvent = (name) => (e) => e.type === 'track' && e.event === name;
const count = (events, name) => tracks(events, name).length;

/** Installed before any page script: records what reaches the page's global error handlers. */
function errorCollector() {
  window.__pageErrors = [];
  addEventListener('error', (e) => window.__pageErrors.push(`error: ${e.message}`));
  addEventListener('unhandledrejection', (e) => window.__pageErrors.push(`unhandledrejection: ${e.reason && (e.reason.stack || e.reason)}`));
}

/**
 * One test with its own ingest. `fn(env)` gets { ingest, newContext(), open(context, opts?, {noinit, path}?), url(opts?, extra?) }.
 * After fn: no page error in any page (Playwright and in-page collectors) and no messageId written twice.
 */
function hostile(name, fn, { timeout = 30_000, ingestArgs = [], todo } = {}) {
  test(name, { timeout, todo }, async () => {
    const ingest = await startIngest({ args: ingestArgs });
    const contexts = [];
    const pageErrors = [];
    const consoleLines = [];
    const pagesSeen = [];
    const url = (opts = {}, extra = {}) => {
      const u = new URL('/hostile.html', web.url);
      u.searchParams.set('opts', JSON.stringify({ writeKey: 'dev', apiHost: ingest.url, flushIntervalMs: 250, autocapture: false, ...opts }));
      for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
      return u.toString();
    };
    const env = {
      ingest,
      url,
      async newContext(options = {}) {
        const context = await browser.newContext(options);
        contexts.push(context);
        await context.addInitScript(errorCollector);
        context.on('page', (page) => {
          pagesSeen.push(page);
          page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.stack || e.message || e}`));
          page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text().slice(0, 300)}`));
        });
        return context;
      },
      async open(context, opts = {}, { noinit = false, page } = {}) {
        page = page ?? (await context.newPage());
        await page.goto(url(opts, noinit ? { noinit: '1' } : {}));
        if (noinit) await page.waitForFunction(() => typeof window.footfallInit === 'function');
        else await ready(page);
        return page;
      },
    };
    let ok = false;
    try {
      await fn(env);
      for (const p of pagesSeen) {
        if (p.isClosed() || !p.url().includes('/hostile.html')) continue;
        pageErrors.push(...(await p.evaluate(() => window.__pageErrors ?? []).catch(() => [])));
      }
      assert.deepEqual(pageErrors, [], 'no uncaught exception or unhandled rejection reached any page');
      const seen = new Set();
      for (const e of await ingest.events()) {
        assert.ok(!seen.has(e.messageId), `messageId ${e.messageId} written twice`);
        seen.add(e.messageId);
      }
      ok = true;
    } finally {
      for (const c of contexts) await c.close().catch(() => {});
      if (ok) await ingest.cleanup();
      else {
        await ingest.stop().catch(() => {});
        console.error(
          `[${name}] kept data dir ${ingest.dataDir}\npage errors: ${JSON.stringify(pageErrors)}\n` +
            `console (tail):\n${consoleLines.slice(-20).join('\n')}\ningest stderr (tail):\n${ingest.stderr().slice(-2000)}`,
        );
      }
    }
  });
}

async function ready(page) {
  await page.waitForFunction(() => window.ff || window.ffInitError, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.ffInitError), undefined, `init() failed on ${page.url()}`);
}

/** JS heap after a full GC, and the wasm linear memory (every WebAssembly.Memory in the page). */
async function memory(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    const proto = await cdp.send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype' });
    const all = await cdp.send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
    const sizes = await cdp.send('Runtime.callFunctionOn', {
      objectId: all.objects.objectId,
      functionDeclaration: 'function () { return this.map((m) => m.buffer.byteLength); }',
      returnByValue: true,
    });
    return { heapUsed: heap.usedSize, wasm: sizes.result.value.reduce((a, b) => a + b, 0), wasmMemories: sizes.result.value.length };
  } finally {
    await cdp.detach();
  }
}

/** Our stored queues: [{ key, header, lines, bytes }]. */
const storedQueues = (page) =>
  page.evaluate(() =>
    Object.keys(localStorage)
      .filter((k) => k.startsWith('ff_q.'))
      .map((k) => {
        const v = localStorage.getItem(k);
        const lines = v.split('\n');
        return { key: k, header: lines[0], lines: lines.length - 1, bytes: v.length };
      }),
  );

const MB = 1024 * 1024;
const fmt = (n) => `${(n / MB).toFixed(2)} MB`;

/** A message as the SDK would have stored it (for seeding a stored queue). */
function storedMessage(event, i) {
  const hex = (n) => n.toString(16).padStart(12, '0');
  return JSON.stringify({
    type: 'track',
    event,
    properties: { i },
    messageId: `5eed0000-0000-4000-8000-${hex(i)}`,
    anonymousId: '5eed0000-0000-4000-8000-aaaaaaaaaaaa',
    timestamp: new Date().toISOString(),
    context: { library: { name: 'footfall', version: 'seeded' } },
  });
}

// === tests ===

describe('footfall SDK under a hostile page (Chromium + footfall-ingest)', () => {
  // --- storage -------------------------------------------------------------------------------

  hostile('storage that throws on every call (local/sessionStorage getters and methods, document.cookie)', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      const deny = () => {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      };
      for (const name of ['localStorage', 'sessionStorage']) Object.defineProperty(window, name, { configurable: true, get: deny });
      for (const m of ['getItem', 'setItem', 'removeItem', 'key', 'clear']) Storage.prototype[m] = deny;
      Object.defineProperty(Storage.prototype, 'length', { configurable: true, get: deny });
      Object.defineProperty(Document.prototype, 'cookie', { configurable: true, get: deny, set: deny });
    });
    const page = await open(context, { autocapture: { pageviews: true, clicks: false } });
    const r = await page.evaluate(async () => {
      const ff = window.ff;
      ff.identify('storage-user', { plan: 'x' });
      for (let i = 0; i < 10; i++) ff.track('No Storage', { i });
      ff.page('Named Page');
      const before = { aid: ff.anonymousId(), sid: ff.sessionId(), uid: ff.userId() };
      ff.reset();
      ff.track('After Reset');
      await ff.flush(); // optOut() drops the unsent queue (by contract): deliver first
      ff.optOut();
      ff.track('While Opted Out');
      ff.optIn();
      ff.track('After OptIn');
      await ff.flush();
      return { before, after: { aid: ff.anonymousId(), sid: ff.sessionId(), uid: ff.userId() } };
    });
    assert.match(r.before.aid, UUID);
    assert.match(r.before.sid, UUID);
    assert.equal(r.before.uid, 'storage-user');
    assert.notEqual(r.after.aid, r.before.aid, 'reset() gives a new anonymous id even with no storage');
    assert.equal(r.after.uid, undefined);
    const events = await settle(ingest);
    assert.equal(count(events, 'No Storage'), 10);
    assert.deepEqual(
      events.map((e) => e.event ?? e.type + (e.name ? `:${e.name}` : '')).sort(),
      ['After OptIn', 'After Reset', ...Array(10).fill('No Storage'), 'identify', 'page', 'page:Named Page'].sort(),
      'load pageview, identify, 10 tracks, page, after-reset and after-optIn tracks, exactly once; nothing while opted out',
    );
    assert.ok(tracks(events, 'No Storage').every((e) => e.userId === 'storage-user' && e.anonymousId === r.before.aid));
    // A reload still works (a new visitor: nothing could be stored).
    await page.reload();
    await ready(page);
    await page.evaluate(() => window.ff.track('Reloaded Without Storage'));
    await waitForEvents(ingest, byEvent('Reloaded Without Storage'));
  });

  hostile('Storage methods throw (getters work) and cookies work: ids fall back to the cookie and survive a reload', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      const deny = () => {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      };
      for (const m of ['getItem', 'setItem', 'removeItem', 'key', 'clear']) Storage.prototype[m] = deny;
      Object.defineProperty(Storage.prototype, 'length', { configurable: true, get: deny });
    });
    const page = await open(context);
    await page.evaluate(() => window.ff.track('Methods Throw'));
    const ids = await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId() }));
    await waitForEvents(ingest, byEvent('Methods Throw'));
    assert.match(await page.evaluate(() => document.cookie), /(^|; )ff_id=ff1%7C/, 'the state went to the ff_id cookie');
    await page.reload();
    await ready(page);
    assert.deepEqual(await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId() })), ids);
    await page.evaluate(() => window.ff.track('Methods Throw Reloaded'));
    await waitForEvents(ingest, byEvent('Methods Throw Reloaded'));
    const events = await settle(ingest);
    assert.equal(events.length, 2);
  });

  /** Fills this origin's localStorage with foreign data until the browser's quota refuses more. */
  const fillLocalStorage = () => {
    localStorage.clear();
    let n = 0;
    for (let size = 1 << 20; size >= 1; ) {
      try {
        localStorage.setItem(`filler.${n}`, 'x'.repeat(size));
        n++;
      } catch (e) {
        if (e.name !== 'QuotaExceededError') throw e;
        size >>= 1;
      }
    }
    let full = false;
    try {
      localStorage.setItem('filler.z', 'x');
    } catch (e) {
      full = e.name === 'QuotaExceededError';
    }
    return { full, keys: n, chars: Object.values(localStorage).reduce((a, v) => a + v.length, 0) };
  };

  hostile('a localStorage filled to QuotaExceededError before init: cookie fallback, every event delivered', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, {}, { noinit: true });
    const fill = await page.evaluate(fillLocalStorage);
    assert.ok(fill.full, `localStorage is full: ${JSON.stringify(fill)}`);
    await open(context, {}, { page });
    await page.evaluate(() => {
      for (let i = 0; i < 30; i++) window.ff.track('Quota Full', { i });
    });
    await waitForEvents(ingest, byEvent('Quota Full'), { count: 30 });
    assert.match(await page.evaluate(() => document.cookie), /(^|; )ff_id=ff1%7C/, 'the ids went to a cookie');
    const aid = await page.evaluate(() => window.ff.anonymousId());
    assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('ff_'))), [], 'nothing of ours fit');
    await page.reload();
    await ready(page);
    assert.equal(await page.evaluate(() => window.ff.anonymousId()), aid, 'same visitor after a reload (cookie)');
    await page.evaluate(() => window.ff.track('Quota Full Reloaded'));
    await waitForEvents(ingest, byEvent('Quota Full Reloaded'));
    const events = await settle(ingest);
    assert.deepEqual(tracks(events, 'Quota Full').map((e) => e.properties.i), Array.from({ length: 30 }, (_, i) => i));
    assert.equal(events.length, 31);
  });

  hostile('localStorage with room for the state but not the queue, ingest down: the in-memory queue is delivered once it is back', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, {}, { noinit: true });
    const fill = await page.evaluate(fillLocalStorage);
    assert.ok(fill.full);
    // Free about 4,096 characters: enough for the ~130-byte state, far too little for the queue.
    const freed = await page.evaluate(() => {
      const keys = Object.keys(localStorage).filter((k) => localStorage.getItem(k).length >= 2048);
      keys.sort((a, b) => localStorage.getItem(a).length - localStorage.getItem(b).length);
      const len = localStorage.getItem(keys[0]).length;
      localStorage.removeItem(keys[0]);
      if (len > 8192) localStorage.setItem('filler.refill', 'x'.repeat(len - 4096));
      return Math.min(len, 4096);
    });
    await ingest.stop();
    await open(context, {}, { page });
    await page.evaluate(() => {
      for (let i = 0; i < 100; i++) window.ff.track('Queue Does Not Fit', { i, pad: 'p'.repeat(400) });
    });
    // The SDK tried to persist: the state is stored; the queue could not be (or only a small part).
    await waitFor(() => page.evaluate(() => (localStorage.getItem('ff_id') || '').startsWith('ff1|')), { message: 'state stored in the freed space' });
    const queues = await storedQueues(page);
    assert.ok(queues.every((q) => q.bytes <= freed), `what was stored fits the ${freed} freed chars: ${JSON.stringify(queues)}`);
    await ingest.restart();
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest);
    assert.deepEqual(tracks(events, 'Queue Does Not Fit').map((e) => e.properties.i), Array.from({ length: 100 }, (_, i) => i), 'all 100, once, in order');
    assert.equal(events.length, 100);
  });

  hostile('cookies disabled (CDP) with storage blocked as Chrome does then: memory only, delivered', async ({ ingest, newContext, open, url }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      const deny = () => {
        throw new DOMException("Failed to read the 'localStorage' property from 'Window': Access is denied for this document.", 'SecurityError');
      };
      for (const name of ['localStorage', 'sessionStorage']) Object.defineProperty(window, name, { configurable: true, get: deny });
      Object.defineProperty(Navigator.prototype, 'cookieEnabled', { configurable: true, get: () => false });
    });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setDocumentCookieDisabled', { disabled: true });
    await page.goto(url({ autocapture: { pageviews: true, clicks: false } }));
    await ready(page);
    assert.equal(await page.evaluate(() => ((document.cookie = 'probe=1'), document.cookie)), '', 'document.cookie is really off');
    await page.evaluate(() => {
      window.ff.identify('cookieless');
      window.ff.track('Cookies Off');
    });
    await waitForEvents(ingest, byEvent('Cookies Off'));
    const events = await settle(ingest);
    assert.equal(events.length, 3, 'pageview, identify, track');
    assert.equal(tracks(events, 'Cookies Off')[0].userId, 'cookieless');
  });

  hostile("persistence: 'cookie' with cookies disabled (CDP): memory for the ids, delivered", async ({ ingest, newContext, url }) => {
    const context = await newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setDocumentCookieDisabled', { disabled: true });
    await page.goto(url({ persistence: 'cookie' }));
    await ready(page);
    await page.evaluate(() => window.ff.track('Cookie Persistence Off'));
    await waitForEvents(ingest, byEvent('Cookie Persistence Off'));
    assert.equal(await page.evaluate(() => localStorage.getItem('ff_id')), null, 'the ids did not silently move to localStorage');
    assert.equal((await settle(ingest)).length, 1);
  });

  // --- corrupt or foreign data under our keys --------------------------------------------------

  const RAND = () => {
    // Deterministic junk: any UTF-16 code unit, lone surrogates, NUL and newlines included.
    let x = 0x9e3779b9;
    const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
    return (n) => Array.from({ length: n }, () => String.fromCharCode(next() & 0xffff)).join('');
  };
  const A = '0a1b2c3d-0000-4000-8000-000000000001';
  const S = '018bcfe5-6800-7000-8000-000000000002';
  const VALID_STATE = `ff1|${A}|${S}|1700000000000|1700000000500|0|0|seed-user`;

  const CORRUPT = {
    'random bytes under ff_id, ff_q.* and ff_tab': {
      seed: (R, { now }) => {
        const rnd = R();
        localStorage.setItem('ff_id', rnd(4096));
        localStorage.setItem('ff_q.deadbeef', rnd(4096));
        localStorage.setItem('ff_q.junkhead', `ffq1 ${now} 1\n` + rnd(4096));
        sessionStorage.setItem('ff_tab', rnd(64));
      },
    },
    'truncated state and queue header': {
      seed: (R, { now, st }) => {
        localStorage.setItem('ff_id', st.slice(0, 40));
        localStorage.setItem('ff_q.0000trnc', `ffq1 ${now}`);
        localStorage.setItem('ff_q.0001trnc', 'ffq1 ');
      },
    },
    'wrong versions (ff2 state, ffq2/ffq0 queues holding a valid-looking message)': {
      seed: (R, { now, st, msg }) => {
        localStorage.setItem('ff_id', st.replace('ff1|', 'ff2|'));
        localStorage.setItem('ff_q.0000ver2', `ffq2 ${now} 1\n${msg}`);
        localStorage.setItem('ff_q.0000ver0', `ffq0 ${now} 1\n${msg}`);
      },
    },
    'JSON of the wrong shape': {
      seed: () => {
        localStorage.setItem('ff_id', JSON.stringify({ anonymousId: 'x', sessionId: 1 }));
        localStorage.setItem('ff_q.00json00', JSON.stringify([{ type: 'track', event: 'Array Queue' }]));
        localStorage.setItem('ff_q.00null00', 'null');
        localStorage.setItem('ff_q.00objc00', '{"batch":[{"type":"track","event":"Object Queue"}]}');
        sessionStorage.setItem('ff_tab', '{"id":1}');
      },
    },
    'valid shape, absurd values (overflowing numbers, uppercase ids, flags 2, 10 KB user id)': {
      seed: (R, { A, S }) => {
        localStorage.setItem('ff_id', `ff1|${A.toUpperCase()}|${S}|99999999999999999999|-1|4294967296|2|${'u'.repeat(10_000)}`);
        localStorage.setItem('ff_q.00absurd', `ffq1 99999999999999999999 1\n{"type":"track"}`);
        sessionStorage.setItem('ff_tab', '../../etc');
      },
    },
    'huge values (1 M chars each)': {
      seed: (R, { now }) => {
        localStorage.setItem('ff_id', 'ff1|' + 'x'.repeat(1_000_000));
        const line = JSON.stringify({ type: 'track', event: 'Oversize Stored', pad: 'o'.repeat(40_000) });
        localStorage.setItem('ff_q.0000huge', `ffq1 ${now} 1\n` + Array(25).fill(line).join('\n'));
        sessionStorage.setItem('ff_tab', 't'.repeat(1_000_000));
      },
    },
  };

  for (const [what, { seed }] of Object.entries(CORRUPT)) {
    hostile(`corrupt or foreign data: ${what} → fresh valid ids, junk removed, events delivered`, async ({ ingest, newContext, open }) => {
      const context = await newContext();
      const page = await open(context, {}, { noinit: true });
      await page.evaluate(
        ([src, R, k]) => new Function('R', 'k', `(${src})(R, k)`)(new Function(`return (${R})`)(), k),
        [seed.toString(), RAND.toString(), { now: Date.now(), st: VALID_STATE, msg: storedMessage('Foreign Version', 1), A, S }],
      );
      await open(context, {}, { page });
      await page.evaluate(() => window.ff.track('After Junk'));
      const ids = await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId(), uid: window.ff.userId() }));
      assert.match(ids.aid, UUID, 'a valid anonymous id');
      assert.notEqual(ids.aid, A);
      assert.match(ids.sid, UUID, 'a valid session id');
      assert.notEqual(ids.sid, S);
      assert.equal(ids.uid, undefined, 'no user id taken from junk');
      await waitForEvents(ingest, byEvent('After Junk'));
      const events = await settle(ingest);
      assert.deepEqual(events.map((e) => e.event), ['After Junk'], 'nothing from the junk was sent');
      // What is left under our keys is ours: the state rewritten, foreign queues removed.
      const left = await page.evaluate(() => Object.fromEntries(Object.keys(localStorage).map((k) => [k, localStorage.getItem(k).slice(0, 60)])));
      assert.match(left.ff_id ?? '', /^ff1\|[0-9a-f-]{36}\|/, `ff_id rewritten in our format: ${JSON.stringify(left.ff_id)}`);
      for (const [k, v] of Object.entries(left)) {
        if (k.startsWith('ff_q.')) assert.match(v, /^ffq1 \d+ [01](\n|$)/, `${k} left in storage is ours: ${JSON.stringify(v)}`);
      }
      assert.ok(
        Object.keys(left).filter((k) => k.startsWith('ff_q.')).length <= 1,
        `at most our own queue key is left: ${Object.keys(left)}`,
      );
      const tab = await page.evaluate(() => sessionStorage.getItem('ff_tab'));
      assert.match(tab, /^[0-9a-zA-Z]{1,16}$/, `ff_tab replaced by a sane id: ${JSON.stringify(tab?.slice(0, 40))}`);
    });
  }

  /** Seeds a closed stored queue of another tab, loads the SDK, returns the page. */
  async function adoptQueue(context, open, lines) {
    const page = await open(context, {}, { noinit: true });
    await page.evaluate(([ls, now]) => localStorage.setItem('ff_q.0badc0de', [`ffq1 ${now} 1`, ...ls].join('\n')), [lines, Date.now()]);
    await open(context, {}, { page });
    return page;
  }

  hostile('a stored queue with damaged lines (torn, binary, oversize, repeated, wrong shape): intact messages delivered once, the rest never sent', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const good = [storedMessage('Stored Good', 1), storedMessage('Stored Good', 2)];
    const oversize = JSON.stringify({ ...JSON.parse(storedMessage('Stored Oversize', 3)), pad: 'o'.repeat(40_000) });
    const page = await adoptQueue(context, open, [good[0], good[1].slice(0, 50), '{"x":1}', '\u0000\ud800garbage', oversize, good[1], good[0], '']);
    await waitForEvents(ingest, byEvent('Stored Good'), { count: 2 });
    await page.evaluate(() => window.ff.track('After Adoption'));
    await waitForEvents(ingest, byEvent('After Adoption'));
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Stored Good').map((e) => e.properties.i).sort(), [1, 2], 'each intact message exactly once (a repeated line is deduped by messageId)');
    assert.equal(count(events, 'Stored Oversize'), 0, 'a line over the size cap is never sent');
    // `{"x":1}` looks like an object, so it may be sent: the ingest rejects that one message (400
    // with `accepted`), and it is never resent.
    assert.equal(events.length, 3);
    assert.equal(await page.evaluate(() => localStorage.getItem('ff_q.0badc0de')), null, 'the adopted key is removed');
  });

  hostile('a stored queue with a line that looks like an object but is not JSON: the intact messages are still delivered', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const good = [storedMessage('Stored Good', 1), storedMessage('Stored Good', 2), storedMessage('Stored Good', 3)];
    // Cut one character before the end: still starts with `{` and ends with `}`, but not JSON.
    const page = await adoptQueue(context, open, [good[0], good[1].slice(0, -1), good[2]]);
    await page.evaluate(() => window.ff.track('After Adoption'));
    await waitForEvents(ingest, byEvent('After Adoption'));
    const events = await settle(ingest, { quietMs: 1500 });
    // Expected loss: only the broken line (i = 2).
    assert.deepEqual(tracks(events, 'Stored Good').map((e) => e.properties.i).sort(), [1, 3], 'the two intact stored messages arrive');
    assert.equal(events.length, 3);
  });

  hostile("persistence: 'cookie' with a malformed ff_id cookie (bad %-escape) and a 3.5 KB foreign cookie", async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, {}, { noinit: true });
    await page.evaluate(() => {
      document.cookie = 'ff_id=%E0%A4%A|ff1%7C; Path=/';
      document.cookie = `ff_junk=${'j'.repeat(3500)}; Path=/`;
    });
    await open(context, { persistence: 'cookie' }, { page });
    const aid = await page.evaluate(() => window.ff.anonymousId());
    assert.match(aid, UUID);
    await page.evaluate(() => window.ff.track('Bad Cookie'));
    await waitForEvents(ingest, byEvent('Bad Cookie'));
    const cookie = await page.evaluate(() => document.cookie.split('; ').find((c) => c.startsWith('ff_id=')));
    assert.match(decodeURIComponent(cookie.slice(6)), /^ff1\|/, 'our cookie rewritten');
    assert.ok(cookie.length < 400, `the cookie stays small (${cookie.length} bytes)`);
    await page.reload();
    await ready(page);
    assert.equal(await page.evaluate(() => window.ff.anonymousId()), aid, 'and is read back after a reload');
    assert.equal((await settle(ingest)).length, 1);
  });

  // --- fetch and sendBeacon --------------------------------------------------------------------

  hostile('fetch broken six ways in turn (throws, non-promise, rejects, resolves to junk, undefined, not a function), then restored: every event once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1 });
    await page.evaluate(() => {
      const real = window.fetch;
      window.__realFetch = real;
      window.__fetchCalls = 0;
      const modes = [
        () => {
          throw new TypeError('page broke fetch');
        },
        () => 'not a promise',
        () => Promise.reject(new Error('rejected by the page')),
        () => Promise.resolve({ status: 200, ok: true, headers: { get: () => null } }),
        () => Promise.resolve(undefined),
        () => ({ then: (ok) => ok({ status: 200 }) }),
      ];
      window.fetch = (...a) => modes[window.__fetchCalls++ % modes.length](...a);
    });
    for (let round = 0; round < 6; round++) {
      await page.evaluate((r) => window.ff.track('Broken Fetch', { r }), round);
      await page.evaluate(() => {
        window.ff.flush(); // stays pending while nothing can be delivered
      });
      await waitFor(() => page.evaluate((n) => window.__fetchCalls > n, round), { message: `fetch called in round ${round}` });
    }
    // Two more breakages the SDK must survive: fetch deleted, fetch not callable.
    await page.evaluate(() => {
      window.fetch = undefined;
      window.ff.track('Broken Fetch', { r: 6 });
      window.ff.flush();
      window.fetch = 42;
      window.ff.track('Broken Fetch', { r: 7 });
      window.ff.flush();
    });
    assert.equal(await ingest.events().then((e) => e.length), 0, 'nothing could have arrived yet');
    await page.evaluate(() => {
      window.fetch = window.__realFetch;
      return window.ff.flush();
    });
    const events = await settle(ingest);
    assert.deepEqual(tracks(events, 'Broken Fetch').map((e) => e.properties.r), [0, 1, 2, 3, 4, 5, 6, 7], 'all 8, once, in order');
    assert.equal(events.length, 8);
  });

  hostile('a fetch wrapper that calls back into the SDK while it sends (flush, a getter, pushState, optOut): each runs right after the send, none is dropped', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1, autocapture: { pageviews: true, clicks: false } });
    const before = await page.evaluate(() => window.ff.anonymousId());
    await waitForEvents(ingest, (e) => e.type === 'page'); // the load's own pageview is out of the way
    await page.evaluate(() => {
      const real = window.fetch;
      window.__reenter = [];
      // Called by the SDK from inside the wasm: every SDK call made here re-enters it.
      window.fetch = (...a) => {
        const step = window.__reenter.shift();
        if (step) step();
        return real(...a);
      };
      window.__inside = {};
      window.__reenter.push(() => {
        window.__inside.id = window.ff.anonymousId();
        window.__flushed = window.ff.flush().then(() => (window.__inside.flushResolved = true));
        history.pushState({}, '', '/hostile.html?spa=reentrant');
      });
      window.ff.track('Sent First');
    });
    // The send may wait for the answer to one still in flight: the wrapper runs when it goes.
    await waitFor(() => page.evaluate(() => window.__reenter.length === 0));
    await page.evaluate(() => window.__flushed);
    const inside = await page.evaluate(() => window.__inside);
    assert.equal(inside.id, '', 'a getter asked while the wasm is busy answers the empty string');
    assert.equal(inside.flushResolved, true, 'the re-entrant flush() settled');
    // The pageview of the pushState made from inside the send.
    await waitForEvents(ingest, (e) => e.type === 'page' && JSON.stringify(e).includes('spa=reentrant'));
    await page.evaluate(() => {
      window.__reenter.push(() => window.ff.optOut());
      window.ff.track('Before OptOut');
    });
    await waitFor(() => page.evaluate(() => window.__reenter.length === 0));
    await page.evaluate(() => {
      window.ff.track('After OptOut');
      return window.ff.flush();
    });
    const events = await settle(ingest);
    assert.equal(count(events, 'Sent First'), 1);
    assert.equal(count(events, 'Before OptOut'), 1, 'the event whose send re-entered went out once');
    assert.equal(count(events, 'After OptOut'), 0, 'the optOut() made from inside the send was not dropped');
    assert.equal(await page.evaluate(() => window.ff.anonymousId()), before, 'getters answer again once the wasm is free');
  });

  hostile('fetch throws, sendBeacon works: events tracked then the page is left go out by beacon, once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1 });
    await page.evaluate(() => {
      window.__fetchCalls = 0;
      window.fetch = () => {
        window.__fetchCalls++;
        throw new Error('no fetch here');
      };
      for (let i = 0; i < 5; i++) window.ff.track('Beacon Only', { i });
    });
    await waitFor(() => page.evaluate(() => window.__fetchCalls > 0));
    await page.goto('about:blank');
    await waitForEvents(ingest, byEvent('Beacon Only'), { count: 5 });
    // The next load (fetch intact) may resend what the beacon carried while sends were failing;
    // the ingest dedupes by messageId, so it must still be exactly once.
    const page2 = await open(context, {});
    await page2.evaluate(() => window.ff.flush());
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Beacon Only').map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4]);
    assert.equal(events.length, 5);
  });

  hostile('fetch and sendBeacon both throw: nothing thrown on page hide; the next load delivers every event once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1 });
    await page.evaluate(() => {
      window.__calls = { fetch: 0, beacon: 0 };
      window.fetch = () => {
        window.__calls.fetch++;
        throw new Error('no fetch');
      };
      navigator.sendBeacon = () => {
        window.__calls.beacon++;
        throw new Error('no beacon');
      };
      for (let i = 0; i < 5; i++) window.ff.track('Nothing Works', { i });
    });
    await waitFor(() => page.evaluate(() => window.__calls.fetch > 0));
    // Hide the page (visibilitychange → hidden, then pagehide) while staying able to read it.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
      dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false }));
    });
    const calls = await page.evaluate(() => window.__calls);
    assert.ok(calls.beacon >= 1, `sendBeacon was tried on page hide: ${JSON.stringify(calls)}`);
    const queues = await storedQueues(page);
    assert.equal(queues.reduce((a, q) => a + q.lines, 0), 5, `the 5 events are persisted for the next load: ${JSON.stringify(queues)}`);
    await page.reload();
    await ready(page);
    await waitForEvents(ingest, byEvent('Nothing Works'), { count: 5 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Nothing Works').map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4]);
    assert.equal(events.length, 5);
  });

  hostile('sendBeacon refuses (returns false): events stay queued and go out by fetch', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1000, flushIntervalMs: 600_000 });
    await page.evaluate(() => {
      window.__beacons = 0;
      navigator.sendBeacon = () => (window.__beacons++, false);
      for (let i = 0; i < 5; i++) window.ff.track('Beacon Refused', { i });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    assert.ok((await page.evaluate(() => window.__beacons)) >= 1);
    assert.equal((await settle(ingest, { quietMs: 500 })).length, 0, 'a refused beacon delivered nothing');
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest);
    assert.deepEqual(tracks(events, 'Beacon Refused').map((e) => e.properties.i), [0, 1, 2, 3, 4]);
    assert.equal(events.length, 5);
  });

  hostile('fetch never settles: nothing thrown; after the page is left the next load delivers every event once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 1 });
    await page.evaluate(() => {
      window.__hung = 0;
      window.fetch = () => (window.__hung++, new Promise(() => {}));
      for (let i = 0; i < 5; i++) window.ff.track('Hung Fetch', { i });
    });
    await waitFor(() => page.evaluate(() => window.__hung > 0));
    await page.evaluate(() => {
      for (let i = 5; i < 8; i++) window.ff.track('Hung Fetch', { i });
    });
    // Leave the page (its beacon may carry the unsent part), then load again with a working fetch.
    await page.goto('about:blank');
    const page2 = await open(context, {});
    await page2.evaluate(() => window.ff.flush());
    await waitForEvents(ingest, byEvent('Hung Fetch'), { count: 8, timeoutMs: 15_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Hung Fetch').map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(events.length, 8);
  });

  hostile('fetch replaced with a throwing function before the SDK loads: no exception reaches the page', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      window.__origFetch = window.fetch;
      window.fetch = () => {
        throw new Error('fetch disabled by the page');
      };
    });
    const page = await context.newPage();
    await page.goto(new URL(`/hostile.html?opts=${encodeURIComponent(JSON.stringify({ writeKey: 'dev', apiHost: ingest.url, autocapture: false }))}`, web.url).toString());
    await page.waitForFunction(() => window.ff || window.ffInitError || (window.__pageErrors && window.__pageErrors.length), null, { timeout: 15_000 });
    const state = await page.evaluate(() => ({ ready: !!window.ff, initError: window.ffInitError ?? null, errors: window.__pageErrors }));
    assert.deepEqual(state.errors, [], 'loading the SDK on a page whose fetch throws raises nothing in the page');
    // init() may reject (the page broke the fetch of the SDK's own code); it must not throw elsewhere.
    if (state.ready) {
      await page.evaluate(() => window.ff.track('Loaded Despite Fetch'));
      await page.goto('about:blank');
      await waitForEvents(ingest, byEvent('Loaded Despite Fetch'));
    } else {
      assert.match(state.initError, /\S/, 'init() rejected with a reason the page can catch');
    }
  });

  // --- hostile event properties ------------------------------------------------------------

  hostile('hostile properties: __proto__/constructor keys arrive as data, no prototype pollution; cycles, BigInt, functions, symbols, dates, typed arrays, throwing getters, 1 MB strings', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 5 });
    const r = await page.evaluate(() => {
      const ff = window.ff;
      const outcomes = {};
      const call = (name, fn) => {
        try {
          fn();
          outcomes[name] = 'ok';
        } catch (e) {
          outcomes[name] = `${e && e.name}: ${e && e.message}`;
        }
      };
      const proto = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"},"hasOwnProperty":1,"toString":"x"}';
      call('proto', () => ff.track('Proto', JSON.parse(proto)));
      call('protoTraits', () => ff.identify('proto-user', JSON.parse('{"__proto__":{"admin":true},"constructor":{"name":"x"}}')));
      call('protoContext', () => ff.track('Proto Context', {}, { context: JSON.parse('{"__proto__":{"polluted":"ctx"},"custom":1}') }));
      call('protoComputed', () => ff.track('Proto Computed', { ['__proto__']: { polluted: 'computed' } }));
      const cyc = { name: 'loop' };
      cyc.self = cyc;
      cyc.list = [cyc, { back: cyc }];
      call('cycle', () => ff.track('Cycle', cyc));
      call('bigint', () => ff.track('BigInt', { n: 12345678901234567890n, nested: { m: -1n } }));
      call('functionsSymbols', () =>
        ff.track('Functions', { f() {}, g: () => 1, cls: class {}, s: Symbol('x'), [Symbol('k')]: 1, u: undefined, keep: 1 }),
      );
      call('dates', () => ff.track('Dates', { d: new Date(0), bad: new Date(NaN) }));
      call('typed', () => ff.track('Typed', { u8: new Uint8Array([1, 2, 3]), f64: new Float64Array([1.5]), ab: new ArrayBuffer(4), m: new Map([[1, 2]]), set: new Set([1]) }));
      call('numbers', () => ff.track('Numbers', { nan: NaN, inf: -Infinity, neg0: -0, big: 1e308 }));
      call('throwingGetter', () =>
        ff.track('Throwing Getter', {
          keep: 1,
          get boom() {
            throw new Error('getter boom');
          },
        }),
      );
      call('throwingToJSON', () =>
        ff.track('Throwing toJSON', {
          toJSON() {
            throw new Error('toJSON boom');
          },
        }),
      );
      call('badTimestamps', () => {
        ff.track('Bad Timestamp', { k: 'string' }, { timestamp: 'not a date' });
        ff.track('Bad Timestamp', { k: 'nan' }, { timestamp: NaN });
        ff.track('Bad Timestamp', { k: 'invalid-date' }, { timestamp: new Date(NaN) });
        ff.track('Bad Timestamp', { k: 'huge' }, { timestamp: 1e20 });
        ff.track('Bad Timestamp', { k: 'negative' }, { timestamp: -1e15 });
      });
      call('oddChars', () => ff.track('Odd \ud800 Name \u0000', { nul: '\u0000', ls: '\u2028', emoji: '😀', quote: '"\\', nl: 'a\nb' }));
      call('nearCap', () => ff.track('Near Cap', { s: 'm'.repeat(28_000) }));
      call('oneMbValue', () => ff.track('One MB Value', { s: 'x'.repeat(1 << 20) }));
      call('oneMbName', () => ff.track('N'.repeat(1 << 20)));
      call('oneMbKey', () => ff.track('One MB Key', { ['k'.repeat(1 << 20)]: 1 }));
      call('symbolName', () => ff.track(Symbol('x')));
      call('last', () => ff.track('Last'));
      const polluted = {
        plain: {}.polluted,
        proto: Object.prototype.polluted,
        admin: {}.admin,
        ownKeys: Object.getOwnPropertyNames(Object.prototype).filter((k) => !['constructor', '__defineGetter__', '__defineSetter__', 'hasOwnProperty', '__lookupGetter__', '__lookupSetter__', 'isPrototypeOf', 'propertyIsEnumerable', 'toString', 'valueOf', '__proto__', 'toLocaleString'].includes(k)),
        toStringOk: typeof Object.prototype.toString === 'function' && {}.toString() === '[object Object]',
      };
      return { outcomes, polluted };
    });
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest);

    // Calls: only the documented TypeError for a wrong argument (the Symbol event name) may throw.
    const threw = Object.entries(r.outcomes).filter(([, v]) => v !== 'ok');
    const allowed = ([k, v]) => k === 'symbolName' && /^TypeError: footfall: .*event/.test(v);
    assert.deepEqual(threw.filter((t) => !allowed(t)), [], `only documented TypeErrors are thrown: ${JSON.stringify(r.outcomes)}`);
    assert.ok(r.outcomes.symbolName.startsWith('TypeError'), 'a Symbol event name is a wrong argument');
    assert.deepEqual(r.polluted, { plain: undefined, proto: undefined, admin: undefined, ownKeys: [], toStringOk: true }, 'Object.prototype untouched');

    const one = (name) => {
      const found = tracks(events, name);
      assert.equal(found.length, 1, `${name}: exactly one line, got ${found.length}`);
      return found[0];
    };
    const own = (o, k) => Object.getOwnPropertyDescriptor(o, k)?.value;
    const p = one('Proto').properties;
    assert.deepEqual(own(p, '__proto__'), { polluted: 'yes' }, '__proto__ arrives as a plain own key');
    assert.deepEqual(own(p, 'constructor'), { prototype: { polluted: 'yes' } });
    assert.deepEqual(own(p, 'prototype'), { polluted: 'yes' });
    assert.equal(own(p, 'hasOwnProperty'), 1);
    const ident = events.find((e) => e.type === 'identify');
    assert.deepEqual(own(ident.traits, '__proto__'), { admin: true });
    const pc = one('Proto Context');
    assert.equal(pc.context.custom, 1, 'options.context keys arrive');
    assert.equal(pc.context.library?.name, 'footfall', 'and our context is intact');
    assert.deepEqual(own(one('Proto Computed').properties, '__proto__'), { polluted: 'computed' });
    assert.deepEqual(one('Cycle').properties, { name: 'loop', self: '[Circular]', list: ['[Circular]', { back: '[Circular]' }] });
    assert.deepEqual(one('BigInt').properties, { n: '12345678901234567890', nested: { m: '-1' } });
    assert.deepEqual(one('Functions').properties, { keep: 1 });
    assert.deepEqual(one('Dates').properties, { d: '1970-01-01T00:00:00.000Z', bad: null });
    assert.deepEqual(one('Typed').properties, { u8: { 0: 1, 1: 2, 2: 3 }, f64: { 0: 1.5 }, ab: {}, m: {}, set: {} });
    assert.deepEqual(one('Numbers').properties, { nan: null, inf: null, neg0: 0, big: 1e308 });
    assert.deepEqual(one('Throwing Getter').properties, {}, 'a throwing getter: sent with {} (README)');
    assert.deepEqual(one('Throwing toJSON').properties, {});
    const bad = tracks(events, 'Bad Timestamp');
    assert.deepEqual(bad.map((e) => e.properties.k).sort(), ['huge', 'invalid-date', 'nan', 'negative', 'string'], 'an unusable timestamp does not lose the event');
    for (const e of bad) assert.ok(Number.isFinite(Date.parse(e.timestamp)), `${e.properties.k}: timestamp ${e.timestamp}`);
    const odd = events.find((e) => e.type === 'track' && e.event.startsWith('Odd '));
    assert.ok(odd, 'an event name with a lone surrogate and NUL arrives');
    assert.deepEqual(odd.properties, { nul: '\u0000', ls: '\u2028', emoji: '😀', quote: '"\\', nl: 'a\nb' });
    assert.equal(one('Near Cap').properties.s.length, 28_000, 'a 28,000-char value (under the 30,000-byte message cap) arrives whole');
    // Expected loss: messages over 30,000 bytes are dropped at track() (the ingest refuses > 32 KB).
    assert.equal(count(events, 'One MB Value'), 0);
    assert.equal(count(events, 'One MB Key'), 0);
    assert.ok(!events.some((e) => e.event?.startsWith('NNNN')), 'a 1 MB event name is dropped');
    one('Last');
    assert.equal(events.length, 20, 'every call that is not an expected loss arrived exactly once');
  });

  hostile('arguments whose getters or proxy traps throw (options.timestamp, options.context, a Proxy as properties): nothing but a TypeError escapes', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { flushAt: 3 });
    const outcomes = await page.evaluate(() => {
      const ff = window.ff;
      const out = {};
      const call = (name, fn) => {
        try {
          fn();
          out[name] = 'ok';
        } catch (e) {
          out[name] = `${e && e.name}: ${e && e.message}`;
        }
      };
      const boom = (what) => () => {
        throw new Error(`${what} (thrown by the page's object)`);
      };
      call('timestampGetter', () => ff.track('Throwing Timestamp', {}, { get timestamp() { return boom('timestamp getter')(); } }));
      call('contextGetter', () => ff.track('Throwing Context', {}, { get context() { return boom('context getter')(); } }));
      const traps = Object.fromEntries(['get', 'has', 'ownKeys', 'getOwnPropertyDescriptor', 'getPrototypeOf'].map((t) => [t, boom(`proxy ${t} trap`)]));
      call('proxyProperties', () => ff.track('Proxy Properties', new Proxy({}, traps)));
      call('proxyOptions', () => ff.track('Proxy Options', {}, new Proxy({}, traps)));
      call('proxyContext', () => ff.track('Proxy Context', {}, { context: new Proxy({}, traps) }));
      return out;
    });
    // Accepted: the call goes through (the unreadable part ignored), or a `footfall:` TypeError
    // naming the argument. Not accepted: the page's own exception unwinding out of our call.
    const bad = Object.entries(outcomes).filter(([, v]) => v !== 'ok' && !/^TypeError: footfall: /.test(v));
    assert.deepEqual(bad, [], `exceptions escaping track(): ${JSON.stringify(outcomes)}`);
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest);
    const expected = Object.entries({ timestampGetter: 'Throwing Timestamp', contextGetter: 'Throwing Context', proxyProperties: 'Proxy Properties', proxyOptions: 'Proxy Options', proxyContext: 'Proxy Context' })
      .filter(([k]) => outcomes[k] === 'ok')
      .map(([, e]) => e);
    assert.deepEqual(events.map((e) => e.event).sort(), expected.sort(), 'each call that returned normally was delivered once');
  });

  // One message the ingest cannot parse must not take the messages batched with it down.
  const POISON = {
    'a lone surrogate in a property value (e.g. a string cut in the middle of an emoji)': () => ({ s: '😀'.slice(0, 1) }),
    'a property nested 200 levels deep': () => {
      let deep = { leaf: 1 };
      for (let i = 0; i < 200; i++) deep = { d: deep };
      return deep;
    },
  };
  for (const [what, make] of Object.entries(POISON)) {
    hostile(`${what}: the events batched with it are still delivered`, async ({ ingest, newContext, open }) => {
      const context = await newContext();
      const page = await open(context, { flushAt: 3, flushIntervalMs: 600_000 });
      const threw = await page.evaluate((src) => {
        try {
          window.ff.track('Before Poison');
          window.ff.track('Poison', new Function(`return (${src})()`)());
          window.ff.track('After Poison');
          return null;
        } catch (e) {
          return String(e);
        }
      }, make.toString());
      assert.equal(threw, null);
      await page.evaluate(() => window.ff.flush());
      const events = await settle(ingest);
      // Expected loss at most: the poison event itself.
      assert.equal(count(events, 'Before Poison'), 1, 'the event before it arrives');
      assert.equal(count(events, 'After Poison'), 1, 'the event after it arrives');
    });
  }

  // --- floods --------------------------------------------------------------------------------

  hostile('20,000 events in a loop, twice, ingest down: stored queue and memory bounded by maxQueueSize; exactly the newest 1,000 arrive', async ({ ingest, newContext, open }) => {
    await ingest.stop();
    const context = await newContext();
    const page = await open(context, {});
    const base = await memory(page);
    const rounds = [];
    for (let round = 0; round < 2; round++) {
      const ms = await page.evaluate((off) => {
        const t0 = performance.now();
        for (let i = off; i < off + 20_000; i++) window.ff.track('Flood', { i, pad: 'x'.repeat(100) });
        return performance.now() - t0;
      }, round * 20_000);
      // The stored queue follows (a queue over 64 KB is written at most once a second).
      const q = await waitFor(
        async () => {
          const qs = await storedQueues(page);
          const own = qs.find((x) => x.lines === 1000);
          return own && qs.length === 1 ? own : null;
        },
        { message: 'the stored queue holds exactly maxQueueSize (1000) messages' },
      );
      const m = await memory(page);
      rounds.push({ ms: Math.round(ms), storedLines: q.lines, storedChars: q.bytes, heapUsed: m.heapUsed, wasm: m.wasm });
    }
    console.log(`[flood, ingest down] baseline heap ${fmt(base.heapUsed)} wasm ${fmt(base.wasm)}; rounds ${JSON.stringify(rounds.map((x) => ({ ...x, heapUsed: fmt(x.heapUsed), wasm: fmt(x.wasm) })))}`);
    for (const x of rounds) {
      assert.ok(x.heapUsed - base.heapUsed < 4 * MB, `JS heap grew by ${fmt(x.heapUsed - base.heapUsed)} (bound 4 MB)`);
      assert.ok(x.wasm <= 16 * MB, `wasm memory ${fmt(x.wasm)} (bound 16 MB)`);
      assert.ok(x.storedChars < 1000 * 1024, `stored queue ${x.storedChars} chars`);
    }
    assert.ok(rounds[1].wasm <= rounds[0].wasm, `the second 20,000 do not grow the wasm memory (${rounds[0].wasm} → ${rounds[1].wasm})`);
    assert.ok(rounds[1].heapUsed - rounds[0].heapUsed < 1 * MB, 'nor the JS heap');

    await ingest.restart();
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest, { quietMs: 1500, timeoutMs: 20_000 });
    const got = tracks(events, 'Flood').map((e) => e.properties.i);
    // Expected loss: the 39,000 oldest (maxQueueSize keeps the newest 1,000).
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, k) => 39_000 + k), 'exactly the newest 1,000, once, in order');
    assert.equal(events.length, 1000);
  }, { timeout: 60_000 });

  hostile('20,000 events in a loop, ingest up: the newest 1,000 arrive, nothing twice, memory bounded', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, {});
    const base = await memory(page);
    await page.evaluate(() => {
      for (let i = 0; i < 20_000; i++) window.ff.track('Flood Up', { i });
    });
    const m = await memory(page);
    await page.evaluate(() => window.ff.flush());
    const events = await settle(ingest, { quietMs: 1500, timeoutMs: 20_000 });
    const got = tracks(events, 'Flood Up').map((e) => e.properties.i);
    const newest = got.filter((i) => i >= 19_000);
    assert.deepEqual(newest, Array.from({ length: 1000 }, (_, k) => 19_000 + k), 'the newest 1,000 arrive once, in order');
    // What else may arrive: batches already handed to fetch during the loop (before maxQueueSize pushed them out).
    const older = got.filter((i) => i < 19_000);
    assert.ok(older.length <= 2500, `older events arrive only from batches in flight during the loop (${older.length})`);
    console.log(`[flood, ingest up] delivered ${got.length}/20000 (lost ${20000 - got.length} to maxQueueSize); heap +${fmt(m.heapUsed - base.heapUsed)}, wasm ${fmt(m.wasm)}`);
    assert.ok(m.heapUsed - base.heapUsed < 4 * MB);
    assert.ok(m.wasm <= 16 * MB);
    assert.ok((await storedQueues(page)).every((q) => q.lines <= 1000));
  });

  hostile('a sustained 2 s burst (thousands per second) with room in the queue: every event exactly once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, { maxQueueSize: 50_000 });
    const sent = await page.evaluate(async () => {
      const end = performance.now() + 2000;
      let i = 0;
      let peak = 0;
      while (performance.now() < end) {
        for (let k = 0; k < 25; k++) window.ff.track('Sustained', { i: i++ });
        const q = Object.keys(localStorage).filter((x) => x.startsWith('ff_q.'));
        for (const key of q) peak = Math.max(peak, localStorage.getItem(key).split('\n').length - 1);
        await new Promise((r) => setTimeout(r, 0));
      }
      return { n: i, peakStored: peak };
    });
    assert.ok(sent.n >= 2000, `at least 1,000 events per second were tracked (${sent.n} in 2 s)`);
    await waitForEvents(ingest, byEvent('Sustained'), { count: sent.n, timeoutMs: 30_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    const got = tracks(events, 'Sustained').map((e) => e.properties.i);
    console.log(`[sustained burst] ${sent.n} events in 2 s, peak stored queue ${sent.peakStored}, delivered ${got.length}`);
    assert.equal(got.length, sent.n);
    assert.equal(new Set(got).size, sent.n, 'each exactly once');
    assert.equal(events.length, sent.n);
  }, { timeout: 60_000 });
});
