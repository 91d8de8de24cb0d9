//! End-to-end tests of the Footfall browser SDK (issue 3, "Tests → End-to-end"): real headless
//! Chromium loads test pages (tests/pages) that import the built SDK (sdk/pkg/index.js) and send
//! to the real footfall-ingest binary on an ephemeral port (a different origin than the page);
//! every assertion is on the NDJSON lines the ingest wrote.
//!
//! Each test gets its own ingest and data dir and its own browser context (fresh storage), so tests
//! are independent; the browser and the static server are shared. A test's data dir is deleted when
//! it passes and kept under tests/.tmp/ (path printed) when it fails.
//!
//! Run: `cd tests && node --test --test-concurrency=1 *.test.mjs` (needs `bash sdk/build.sh` and
//! `cargo build -p footfall-ingest` first). Env: FOOTFALL_INGEST_BIN, FOOTFALL_SDK_PKG (directory
//! served at /pkg/ instead of sdk/pkg), FOOTFALL_CHROMIUM.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  REPO_ROOT,
  TMP_DIR,
  launchBrowser,
  settle,
  startIngest,
  startStatic,
  waitFor,
  waitForEvents,
} from './lib/harness.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
// context.library.version must be what npm installs (sdk/js/context.js keeps a copy).
const PKG_VERSION = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'npm', 'package.json'), 'utf8')).version;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

let browser;
let web;

let pkgSnapshot;

before(async () => {
  // FOOTFALL_SDK_PKG serves another build of the SDK at /pkg/ (e.g. a copy under test). The suite
  // serves a snapshot taken now, so a rebuild of sdk/pkg during the run cannot mix two builds.
  const pkg = path.resolve(REPO_ROOT, process.env.FOOTFALL_SDK_PKG || 'sdk/pkg');
  assert.ok(fs.existsSync(path.join(pkg, 'index.js')), `${pkg}/index.js missing: run \`bash sdk/build.sh\``);
  await fsp.mkdir(TMP_DIR, { recursive: true });
  pkgSnapshot = await fsp.mkdtemp(path.join(TMP_DIR, 'pkg-'));
  await fsp.cp(pkg, pkgSnapshot, { recursive: true });
  browser = await launchBrowser();
  web = await startStatic({
    '/': 'tests/pages',
    '/pkg/': pkgSnapshot,
    // The same pages, cacheable: `no-store` documents are never put in the back-forward cache.
    '/bfcache/': { dir: 'tests/pages', headers: { 'Cache-Control': 'no-cache' } },
  });
});

after(async () => {
  await browser?.close();
  await web?.stop();
  if (pkgSnapshot) await fsp.rm(pkgSnapshot, { recursive: true, force: true });
});

// === helpers ===

const tracks = (events, name) => events.filter((e) => e.type === 'track' && (name === undefined || e.event === name));
const pages = (events) => events.filter((e) => e.type === 'page');
const byEvent = (name) => (e) => e.type === 'track' && e.event === name;

function assertUniqueMessageIds(events) {
  const seen = new Map();
  for (const e of events) {
    assert.equal(typeof e.messageId, 'string', `every line has a messageId: ${JSON.stringify(e)}`);
    assert.ok(!seen.has(e.messageId), `messageId ${e.messageId} written twice:\n${JSON.stringify(seen.get(e.messageId))}\n${JSON.stringify(e)}`);
    seen.set(e.messageId, e);
  }
}

function classList(classes) {
  if (Array.isArray(classes)) return classes;
  if (typeof classes === 'string') return classes.split(/\s+/).filter(Boolean);
  return [];
}

/** Waits for the SDK on a page to be ready (`window.ff`), failing fast on an init error. */
async function ready(page) {
  await page.waitForFunction(() => window.ff || window.ffInitError, null, { timeout: 15_000 });
  const initError = await page.evaluate(() => window.ffInitError);
  assert.equal(initError, undefined, `init() failed on ${page.url()}`);
}

/**
 * Declares one e2e test with its own ingest. `fn(env)` gets:
 *   ingest                      the running ingest (see harness)
 *   newContext(options?, { on }?)  a fresh context (of the shared browser, or `on`) whose page errors are collected
 *   url(path, params?)          a test-page URL with writeKey/apiHost/flushIntervalMs set
 *   open(context, path, params?, gotoOptions?)  a new page at url(...), SDK ready
 *   ingestRequests              requests the pages sent to the ingest ({ t, method, url, postData })
 *   ingestResponses             the ingest's answers the pages saw ({ t, status, url, retryAfter })
 * After fn: no page error may have happened and every messageId the ingest wrote is unique.
 */
function e2e(name, fn, { timeout = 60_000, ingestArgs = [] } = {}) {
  test(name, { timeout }, async () => {
    const ingest = await startIngest({ args: ingestArgs });
    const contexts = [];
    const pageErrors = [];
    const consoleLines = [];
    const ingestRequests = [];
    const ingestResponses = [];
    const env = {
      ingest,
      ingestRequests,
      ingestResponses,
      async newContext(options = {}, { on = browser } = {}) {
        const context = await on.newContext(options);
        contexts.push(context);
        context.on('page', (page) => {
          page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.stack || e.message || e}`));
          page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
        });
        context.on('request', (r) => {
          if (r.url().startsWith(ingest.url)) ingestRequests.push({ t: Date.now(), method: r.method(), url: r.url(), postData: r.postData() });
        });
        context.on('response', (r) => {
          if (r.url().startsWith(ingest.url)) {
            ingestResponses.push({ t: Date.now(), status: r.status(), url: r.url(), retryAfter: r.headers()['retry-after'] });
          }
        });
        return context;
      },
      url(path, params = {}) {
        const u = new URL(path, web.url);
        const defaults = { writeKey: 'dev', apiHost: ingest.url, flushIntervalMs: '250' };
        for (const [k, v] of Object.entries({ ...defaults, ...params })) {
          if (v === null || v === undefined) u.searchParams.delete(k);
          else u.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v));
        }
        return u.toString();
      },
      async open(context, path, params = {}, gotoOptions = {}) {
        const page = await context.newPage();
        await page.goto(env.url(path, params), gotoOptions);
        if (params.noinit !== '1') await ready(page);
        return page;
      },
    };
    let ok = false;
    try {
      await fn(env);
      assert.deepEqual(pageErrors, [], 'no uncaught exception or unhandled rejection in any page');
      assertUniqueMessageIds(await ingest.events());
      ok = true;
    } finally {
      for (const c of contexts) await c.close().catch(() => {});
      if (ok) {
        await ingest.cleanup();
      } else {
        await ingest.stop().catch(() => {});
        console.error(
          `[${name}] kept data dir ${ingest.dataDir}\n` +
            `page errors: ${JSON.stringify(pageErrors)}\n` +
            `console (tail):\n${consoleLines.slice(-30).join('\n')}\n` +
            `ingest stderr (tail):\n${ingest.stderr().slice(-3000)}`,
        );
      }
    }
  });
}

// === tests ===

describe('footfall SDK end to end (Chromium + footfall-ingest)', () => {
  e2e('pageview on load carries every context field', async ({ ingest, newContext, open }) => {
    const context = await newContext({
      locale: 'de-DE',
      timezoneId: 'Europe/Berlin',
      deviceScaleFactor: 2,
      viewport: { width: 1000, height: 700 },
      screen: { width: 1280, height: 800 },
    });
    const page = await open(
      context,
      '/index.html',
      { utm_source: 'newsletter', utm_medium: 'email', utm_campaign: 'spring', utm_term: 'shoes', utm_content: 'hero' },
      { referer: 'https://referrer.example/some/path?q=1' },
    );
    const [pv] = await waitForEvents(ingest, (e) => e.type === 'page');
    const events = await settle(ingest);
    assert.equal(events.length, 1, `exactly one line (the pageview), got ${JSON.stringify(events)}`);

    const truth = await page.evaluate(() => ({
      url: location.href,
      path: location.pathname,
      search: location.search,
      title: document.title,
      referrer: document.referrer,
      userAgent: navigator.userAgent,
      locale: navigator.language,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      screen: { width: screen.width, height: screen.height, density: devicePixelRatio },
      sessionId: window.ff.sessionId(),
      anonymousId: window.ff.anonymousId(),
      userId: window.ff.userId(),
    }));
    assert.ok(truth.referrer, 'the page has a referrer to report');

    assert.equal(pv.type, 'page');
    assert.match(pv.messageId, /\S/);
    assert.match(pv.anonymousId, UUID, 'anonymousId is a UUID');
    assert.equal(pv.anonymousId, truth.anonymousId, 'anonymousId() matches what was sent');
    assert.ok(pv.userId === undefined || pv.userId === null, `no userId before identify, got ${pv.userId}`);
    assert.ok(!truth.userId, 'userId() is empty before identify');
    assert.match(pv.timestamp, ISO, 'timestamp is ISO-8601');
    assert.match(pv.originalTimestamp, ISO, 'the SDK sent sentAt, so the ingest kept originalTimestamp');
    assert.match(pv.receivedAt, ISO);
    assert.equal(pv.source, 'dev');

    const c = pv.context;
    assert.equal(c.library?.name, 'footfall');
    assert.equal(c.library?.version, PKG_VERSION, 'library.version is the npm package version');
    assert.deepEqual(
      { path: c.page?.path, referrer: c.page?.referrer, search: c.page?.search, title: c.page?.title, url: c.page?.url },
      { path: truth.path, referrer: truth.referrer, search: truth.search, title: truth.title, url: truth.url },
      'context.page',
    );
    assert.equal(c.page.title, 'Footfall E2E Home');
    assert.equal(c.userAgent, truth.userAgent);
    assert.equal(c.locale, truth.locale);
    assert.equal(c.locale, 'de-DE');
    assert.equal(c.timezone, 'Europe/Berlin');
    assert.deepEqual(c.screen, { width: 1280, height: 800, density: 2 });
    assert.deepEqual(c.screen, truth.screen);
    assert.deepEqual(
      c.campaign,
      { source: 'newsletter', medium: 'email', name: 'spring', term: 'shoes', content: 'hero' },
      'context.campaign from utm_* (Segment spec: utm_campaign → name)',
    );
    assert.match(c.sessionId, UUID_V7, 'sessionId is a UUID v7');
    assert.equal(c.sessionId, truth.sessionId, 'sessionId() matches what was sent');
    assert.equal(c.sessionStart, true, 'first event of the session carries sessionStart');
    assert.equal(typeof c.ip, 'string', 'the ingest adds context.ip');

    // Every message type carries the same context (the SDK sends page-independent context once
    // per batch; the ingest merges it into each line), and the fields of its type.
    await page.evaluate(() => {
      window.ff.track('Signed Up', { plan: 'pro' });
      window.ff.identify('user-7', { email: 'a@b.c' });
      window.ff.page('Pricing', { section: 'top' });
    });
    await waitForEvents(ingest, (e) => e.type === 'page' && e.name === 'Pricing');
    const all = await settle(ingest);
    assert.deepEqual(all.map((e) => e.type), ['page', 'track', 'identify', 'page']);
    const [, tr, idf, named] = all;
    assert.equal(tr.event, 'Signed Up');
    assert.deepEqual(tr.properties, { plan: 'pro' });
    assert.equal(idf.userId, 'user-7');
    assert.deepEqual(idf.traits, { email: 'a@b.c' });
    assert.equal(named.name, 'Pricing');
    assert.equal(named.properties?.section, 'top');
    assert.equal(named.userId, 'user-7', 'messages after identify carry the userId');
    for (const m of [tr, idf, named]) {
      const mc = m.context;
      const what = `${m.type} ${m.event ?? m.name ?? ''}`;
      assert.deepEqual(mc.library, c.library, `${what}: library`);
      assert.deepEqual(mc.page, c.page, `${what}: page`);
      assert.deepEqual(mc.campaign, c.campaign, `${what}: campaign`);
      assert.deepEqual(mc.screen, c.screen, `${what}: screen`);
      assert.deepEqual([mc.userAgent, mc.locale, mc.timezone, mc.sessionId], [c.userAgent, c.locale, c.timezone, c.sessionId], `${what}: userAgent, locale, timezone, sessionId`);
      assert.ok(!mc.sessionStart, `${what}: sessionStart only on the session's first event`);
      assert.equal(m.anonymousId, pv.anonymousId);
      assert.match(m.timestamp, ISO);
    }
  });

  e2e('the same session across a reload and across two tabs', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const tab1 = await open(context, '/index.html', { tab: '1' });
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 1 });
    await tab1.reload();
    await ready(tab1);
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 2 });
    const tab2 = await open(context, '/index.html', { tab: '2' });
    await tab2.evaluate(() => window.ff.track('From Tab 2'));
    await tab1.evaluate(() => window.ff.track('From Tab 1'));
    await waitForEvents(ingest, (e) => e.type === 'track', { count: 2 });
    const events = await settle(ingest);

    assert.equal(pages(events).length, 3, 'one pageview per load (tab 1, its reload, tab 2)');
    assert.equal(tracks(events).length, 2);
    const sessionIds = new Set(events.map((e) => e.context?.sessionId));
    const anonymousIds = new Set(events.map((e) => e.anonymousId));
    assert.equal(sessionIds.size, 1, `one session across reload and tabs, saw ${[...sessionIds]}`);
    assert.equal(anonymousIds.size, 1, `one anonymousId across reload and tabs, saw ${[...anonymousIds]}`);
    const starts = events.filter((e) => e.context?.sessionStart === true);
    assert.equal(starts.length, 1, 'only the very first event starts the session');
    assert.equal(starts[0].context.page.search.includes('tab=1'), true, 'and that is tab 1’s first pageview');
    assert.equal(await tab2.evaluate(() => window.ff.sessionId()), [...sessionIds][0]);
    assert.equal(await tab1.evaluate(() => window.ff.sessionId()), [...sessionIds][0]);
  });

  e2e('a new session after the inactivity timeout, not before', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    // Fake time (Date, timers, performance) so a 1-minute timeout takes no real minute. The clock
    // keeps flowing at real speed between fast-forwards, so the SDK's timers still run.
    await context.clock.install();
    const page = await open(context, '/index.html', { sessionTimeoutMinutes: '1' });
    const [pv] = await waitForEvents(ingest, (e) => e.type === 'page');
    const first = pv.context.sessionId;

    await page.clock.fastForward('00:40'); // 40 s idle < 60 s
    await page.evaluate(() => window.ff.track('Active 40s'));
    await page.clock.fastForward('00:50'); // 50 s since the last activity, 90 s since the start
    await page.evaluate(() => window.ff.track('Active 90s'));
    await page.clock.fastForward('01:05'); // 65 s idle > 60 s
    await page.evaluate(() => window.ff.track('After Timeout'));
    await page.evaluate(() => window.ff.track('Same New Session'));
    const sidNow = await page.evaluate(() => window.ff.sessionId());
    await page.evaluate(() => window.ff.flush());
    await waitForEvents(ingest, byEvent('Same New Session'));
    const events = await settle(ingest);

    const get = (name) => {
      const found = tracks(events, name);
      assert.equal(found.length, 1, `exactly one "${name}"`);
      return found[0];
    };
    assert.equal(get('Active 40s').context.sessionId, first, 'activity within the timeout keeps the session');
    assert.equal(get('Active 90s').context.sessionId, first, 'the timeout counts from the last activity');
    assert.ok(!get('Active 90s').context.sessionStart);
    const after = get('After Timeout');
    assert.notEqual(after.context.sessionId, first, 'a new session after 65 s idle with a 1-minute timeout');
    assert.match(after.context.sessionId, UUID_V7);
    assert.equal(after.context.sessionStart, true, 'the first event of the new session carries sessionStart');
    assert.equal(get('Same New Session').context.sessionId, after.context.sessionId);
    assert.ok(!get('Same New Session').context.sessionStart);
    assert.equal(sidNow, after.context.sessionId, 'sessionId() reports the new session');
    assert.equal(after.anonymousId, pv.anonymousId, 'a session timeout keeps the anonymousId');
  });

  e2e('activity in one tab keeps the session alive for the other tabs', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.clock.install(); // one fake clock for every page of the context
    const a = await open(context, '/index.html', { sessionTimeoutMinutes: '1', tab: 'a' });
    const b = await open(context, '/index.html', { sessionTimeoutMinutes: '1', tab: 'b' });
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 2 });
    const first = await a.evaluate(() => window.ff.sessionId());

    await context.clock.fastForward('00:40');
    await b.evaluate(() => window.ff.track('B Active'));
    await context.clock.fastForward('00:40'); // tab A idle for 80 s, but the origin active 40 s ago
    await a.evaluate(() => window.ff.track('A Still In Session'));
    await a.evaluate(() => window.ff.flush());
    await b.evaluate(() => window.ff.flush());
    await waitForEvents(ingest, (e) => byEvent('A Still In Session')(e) || byEvent('B Active')(e), { count: 2 });
    const events = await settle(ingest);

    assert.equal(events.length, 4);
    assert.deepEqual([...new Set(events.map((e) => e.context.sessionId))], [first], 'one session for both tabs');
    assert.equal(events.filter((e) => e.context.sessionStart === true).length, 1);
  });

  e2e('a new session after maxSessionHours even while active', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.clock.install();
    const page = await open(context, '/index.html', { sessionTimeoutMinutes: '30', maxSessionHours: '1' });
    const [pv] = await waitForEvents(ingest, (e) => e.type === 'page');
    for (const minute of [20, 40]) {
      await page.clock.fastForward('20:00');
      await page.evaluate((m) => window.ff.track('Active', { minute: m }), minute);
    }
    await page.clock.fastForward('21:00');
    await page.evaluate(() => window.ff.track('Active', { minute: 61 }));
    await page.evaluate(() => window.ff.flush());
    await waitForEvents(ingest, byEvent('Active'), { count: 3 });
    const events = await settle(ingest);
    const sid = Object.fromEntries(tracks(events, 'Active').map((e) => [e.properties.minute, e.context]));
    assert.equal(sid[20].sessionId, pv.context.sessionId);
    assert.equal(sid[40].sessionId, pv.context.sessionId);
    assert.notEqual(sid[61].sessionId, pv.context.sessionId, 'a session never lasts longer than maxSessionHours');
    assert.equal(sid[61].sessionStart, true);
  });

  e2e('a page opened with different utm_* parameters starts a new session', async ({ ingest, newContext, open, url }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { utm_source: 'a', utm_campaign: 'x', step: '1' });
    const go = async (params) => {
      await page.goto(url('/index.html', params));
      await ready(page);
    };
    await go({ utm_source: 'a', utm_campaign: 'x', step: '2' }); // same campaign
    await go({ step: '3' }); // no campaign: not a different one
    await go({ utm_source: 'b', utm_campaign: 'x', step: '4' }); // different campaign
    await go({ utm_source: 'b', utm_campaign: 'x', step: '5' });
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 5 });
    const events = await settle(ingest);
    const step = (e) => new URL(e.context.page.url).searchParams.get('step');
    const sids = Object.fromEntries(pages(events).map((e) => [step(e), e.context.sessionId]));
    assert.equal(pages(events).length, 5);
    assert.equal(sids[2], sids[1], 'the same campaign keeps the session');
    assert.equal(sids[3], sids[1], 'a page without utm_* keeps the session');
    assert.notEqual(sids[4], sids[1], 'a different campaign starts a new session');
    assert.equal(sids[5], sids[4]);
    const p4 = pages(events).find((e) => step(e) === '4');
    assert.equal(p4.context.sessionStart, true);
    assert.deepEqual(p4.context.campaign, { source: 'b', name: 'x' });
  });

  e2e("persistence: 'cookie' keeps the ids in a small first-party Lax cookie that never grows", async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { persistence: 'cookie' });
    await waitForEvents(ingest, (e) => e.type === 'page');
    const ids = await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId() }));
    const ours = async () => (await context.cookies()).filter((c) => c.domain.includes('127.0.0.1'));
    const cookies = await ours();
    assert.ok(cookies.length > 0, 'the SDK set a cookie');
    const idCookie = cookies.find((c) => decodeURIComponent(c.value).includes(ids.aid));
    assert.ok(idCookie, `a cookie holds the anonymousId: ${JSON.stringify(cookies)}`);
    assert.ok(idCookie.expires > Date.now() / 1000 + 300 * 86400, `the anonymousId cookie lives about a year (expires ${idCookie.expires})`);
    for (const c of cookies) {
      assert.equal(c.sameSite, 'Lax', `${c.name} is SameSite=Lax`);
      assert.equal(c.httpOnly, false);
      assert.equal(c.secure, false, 'not Secure on http');
    }
    const size = (cs) => cs.reduce((n, c) => n + c.name.length + c.value.length, 0);
    const before = size(cookies);

    await page.evaluate(() => {
      window.ff.identify('cookie-user');
      for (let i = 0; i < 50; i++) window.ff.track('Cookie Bulk', { i, pad: 'x'.repeat(200) });
    });
    await waitForEvents(ingest, byEvent('Cookie Bulk'), { count: 50 });
    const after = await ours();
    assert.ok(size(after) <= before + 'cookie-user'.length + 64, `cookies do not grow with events: ${before} → ${size(after)} bytes`);
    assert.ok(size(after) < 1024, `cookies stay small: ${size(after)} bytes`);

    await page.reload();
    await ready(page);
    assert.deepEqual(await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId(), uid: window.ff.userId() })), { ...ids, uid: 'cookie-user' });
  });

  e2e("persistence: 'memory' stores no ids and touches no storage: a reload is a new visitor", async ({ ingest, newContext, open }) => {
    const context = await newContext();
    // Records every Storage method call and document.cookie access of the page (the test's own
    // reads below come after the record is taken): 'memory' must not even read.
    await context.addInitScript(() => {
      const touches = (window.storageTouches = []);
      for (const m of ['getItem', 'setItem', 'removeItem', 'key', 'clear']) {
        const f = Storage.prototype[m];
        Storage.prototype[m] = function (...a) {
          touches.push(`${this === window.sessionStorage ? 'sessionStorage' : 'localStorage'}.${m}(${a[0] ?? ''})`);
          return f.apply(this, a);
        };
      }
      const d = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
      Object.defineProperty(Document.prototype, 'cookie', {
        configurable: true,
        get() {
          touches.push('document.cookie get');
          return d.get.call(this);
        },
        set(v) {
          touches.push(`document.cookie set ${v}`);
          d.set.call(this, v);
        },
      });
    });
    const snapshot = () =>
      page.evaluate(() => {
        const touches = window.storageTouches.slice();
        return { touches, local: Object.keys(localStorage), session: Object.keys(sessionStorage), cookie: document.cookie };
      });
    const nothing = { touches: [], local: [], session: [], cookie: '' };
    const page = await open(context, '/index.html', { persistence: 'memory' });
    await waitForEvents(ingest, (e) => e.type === 'page');
    // An identify and a queued event give the SDK state and a queue it could write.
    await page.evaluate(() => {
      window.ff.identify('memory-user');
      window.ff.track('Memory Event');
    });
    await waitForEvents(ingest, byEvent('Memory Event'));
    assert.deepEqual(await snapshot(), nothing, 'no storage touched on the first load');
    await page.reload(); // page hide: the queue would be persisted here in the other modes
    await ready(page);
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 2 });
    const events = await settle(ingest);
    assert.deepEqual(await snapshot(), nothing, 'no storage touched after the reload either');
    assert.equal(events.length, 4);
    const [first, second] = events.filter((e) => e.type === 'page');
    assert.notEqual(first.anonymousId, second.anonymousId);
    assert.notEqual(first.context.sessionId, second.context.sessionId);
    assert.equal(second.userId ?? null, null, 'the user id is not remembered');
  });

  e2e('reset() starts a new session and a new anonymous id', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html');
    const [pv] = await waitForEvents(ingest, (e) => e.type === 'page');
    const before = await page.evaluate(() => ({ sid: window.ff.sessionId(), aid: window.ff.anonymousId() }));
    assert.equal(before.sid, pv.context.sessionId);
    const afterIds = await page.evaluate(() => {
      window.ff.reset();
      window.ff.track('After Reset');
      return { sid: window.ff.sessionId(), aid: window.ff.anonymousId() };
    });
    await waitForEvents(ingest, byEvent('After Reset'));
    const events = await settle(ingest);
    const [ev] = tracks(events, 'After Reset');
    assert.equal(tracks(events, 'After Reset').length, 1);
    assert.notEqual(ev.context.sessionId, pv.context.sessionId, 'new session after reset');
    assert.match(ev.context.sessionId, UUID_V7);
    assert.equal(ev.context.sessionStart, true, 'the first event after reset starts the session');
    assert.notEqual(ev.anonymousId, pv.anonymousId, 'new anonymousId after reset');
    assert.match(ev.anonymousId, UUID);
    assert.deepEqual(afterIds, { sid: ev.context.sessionId, aid: ev.anonymousId });

    // The reset identity is the stored one: a reload keeps it.
    await page.reload();
    await ready(page);
    assert.deepEqual(await page.evaluate(() => ({ sid: window.ff.sessionId(), aid: window.ff.anonymousId() })), afterIds);
  });

  e2e('identify() then reset()', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { autocapture: false });
    const anonymousBefore = await page.evaluate(() => window.ff.anonymousId());
    await page.evaluate(() => {
      window.ff.identify('user-42', { email: 'a@b.c', plan: 'pro' });
      window.ff.track('While Known', { step: 1 });
    });
    assert.equal(await page.evaluate(() => window.ff.userId()), 'user-42');
    await waitForEvents(ingest, byEvent('While Known'));

    // The user id is persisted: it survives a reload.
    await page.reload();
    await ready(page);
    assert.equal(await page.evaluate(() => window.ff.userId()), 'user-42');
    await page.evaluate(() => window.ff.track('After Reload'));
    await waitForEvents(ingest, byEvent('After Reload'));

    const afterReset = await page.evaluate(() => {
      window.ff.reset();
      window.ff.track('After Logout');
      return { userId: window.ff.userId(), aid: window.ff.anonymousId() };
    });
    assert.ok(!afterReset.userId, `userId() is empty after reset, got ${afterReset.userId}`);
    await waitForEvents(ingest, byEvent('After Logout'));
    const events = await settle(ingest);

    const identifies = events.filter((e) => e.type === 'identify');
    assert.equal(identifies.length, 1, 'exactly one identify message');
    const [idf] = identifies;
    assert.equal(idf.userId, 'user-42');
    assert.deepEqual(idf.traits, { email: 'a@b.c', plan: 'pro' });
    assert.equal(idf.anonymousId, anonymousBefore, 'identify links the anonymous id to the user');
    assert.ok(idf.context?.sessionId, 'identify carries the session');

    const [known] = tracks(events, 'While Known');
    assert.equal(known.userId, 'user-42');
    assert.equal(known.anonymousId, anonymousBefore);
    assert.deepEqual(known.properties, { step: 1 });
    const [reloaded] = tracks(events, 'After Reload');
    assert.equal(reloaded.userId, 'user-42', 'userId is sent after a reload');
    assert.equal(reloaded.anonymousId, anonymousBefore);

    const [logout] = tracks(events, 'After Logout');
    assert.ok(logout.userId === undefined || logout.userId === null, `no userId after reset, got ${logout.userId}`);
    assert.notEqual(logout.anonymousId, anonymousBefore, 'reset gives a new anonymousId');
    assert.equal(logout.anonymousId, afterReset.aid);
    assert.notEqual(logout.context.sessionId, known.context.sessionId, 'reset starts a new session');
    assert.equal(events.length, 4, `identify + 3 tracks, got ${events.map((e) => e.event ?? e.type)}`);
  });

  e2e('SPA navigation: exactly one pageview per path or query change', async ({ ingest, newContext, open, url }) => {
    const context = await newContext();
    const page = await open(context, '/spa.html');
    await waitForEvents(ingest, (e) => e.type === 'page');
    const nav = (href, replace = false) => page.evaluate(([h, r]) => window.navigate(h, { replace: r }), [href, replace]);
    await nav('/spa/a'); // path change → pageview
    await nav('/spa/a'); // same URL pushed again → none
    await nav('/spa/a', true); // same-URL replace → none
    await nav('/spa/a#section'); // fragment only → none
    await page.click('#to-b'); // router link to /spa/b?x=1 → pageview
    await nav('/spa/b?x=2', true); // query change by replace → pageview
    await page.goBack(); // popstate back to /spa/a#section → pageview (/spa/a)
    await waitFor(() => page.evaluate(() => location.pathname === '/spa/a'));
    await page.evaluate(() => window.ff.track('SPA Done'));
    await waitForEvents(ingest, byEvent('SPA Done'));
    const events = await settle(ingest);

    const got = pages(events).map((e) => `${e.context.page.path}${e.context.page.search ?? ''}`);
    const start = new URL(url('/spa.html'));
    assert.deepEqual(got, [`/spa.html${start.search}`, '/spa/a', '/spa/b?x=1', '/spa/b?x=2', '/spa/a']);
    const last = pages(events).at(-1);
    assert.equal(new URL(last.context.page.url).pathname, '/spa/a', 'context.page.url follows the SPA route');
    assert.equal(new Set(events.map((e) => e.context.sessionId)).size, 1, 'SPA navigation keeps the session');
  });

  e2e('a page restored from the back-forward cache sends one pageview', async ({ ingest, newContext, open, url }) => {
    // Playwright turns the back-forward cache off by default; this test needs it on.
    const bfBrowser = await launchBrowser({ ignoreDefaultArgs: ['--disable-back-forward-cache'] });
    try {
      const context = await newContext({}, { on: bfBrowser });
      await context.addInitScript(() => addEventListener('pageshow', (e) => { window.restoredFromBfcache = e.persisted; }));
      const page = await open(context, '/bfcache/index.html', { visit: '1' });
      await waitForEvents(ingest, (e) => e.type === 'page');
      await page.goto(url('/bfcache/index.html', { noinit: '1', visit: 'elsewhere' }));
      await page.goBack({ waitUntil: 'commit' }); // a restore fires no load event
      await waitFor(() => page.evaluate(() => window.restoredFromBfcache === true && !!window.ff), { message: 'restored from the back-forward cache' });
      await waitForEvents(ingest, (e) => e.type === 'page', { count: 2 });
      await page.evaluate(() => window.ff.track('After Restore'));
      await waitForEvents(ingest, byEvent('After Restore'));
      const events = await settle(ingest);
      const pvs = pages(events);
      assert.equal(pvs.length, 2, 'the load and the restore: one pageview each');
      assert.equal(new URL(pvs[1].context.page.url).searchParams.get('visit'), '1');
      assert.equal(new Set(events.map((e) => e.context.sessionId)).size, 1);
      assert.equal(events.length, 3);
    } finally {
      await bfBrowser.close();
    }
  });

  e2e('click autocapture, and no input value anywhere in the output', async ({ ingest, newContext, open }) => {
    const context = await newContext({ viewport: { width: 1200, height: 900 } });
    const page = await open(context, '/clicks.html', { flushIntervalMs: '500' });
    await waitForEvents(ingest, (e) => e.type === 'page');

    const nonce = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    const secrets = {
      text: `SECRETTEXT${nonce}`,
      password: `SECRETPASS${nonce}`,
      textarea: `SECRETAREA${nonce}`,
    };
    await page.click('#text');
    await page.keyboard.type(secrets.text);
    await page.click('#password');
    await page.keyboard.type(secrets.password);
    await page.click('#textarea');
    await page.keyboard.type(secrets.textarea);
    await page.selectOption('#select', 'second-option');
    await page.click('#select');
    await page.keyboard.press('Escape');

    const boxes = {};
    for (const sel of ['#link', '#buy', '#role-btn', '#nested-inner', '#long', '#plan', '#banner', '#para', '#input-button', '#submit', '#private-btn', '#private-link', '#private-deep', '#sentinel']) {
      await page.click(sel);
      // Page coordinates of the element as clicked (Playwright scrolls it into view first).
      const box = await page.locator(sel).boundingBox();
      const scroll = await page.evaluate(() => ({ x: window.scrollX, y: window.scrollY }));
      boxes[sel] = { ...box, x: box.x + scroll.x, y: box.y + scroll.y };
    }
    await page.evaluate(() => window.ff.flush());
    await waitForEvents(ingest, (e) => e.type === 'track' && e.properties?.id === 'sentinel');
    const events = await settle(ingest);
    const raw = (await ingest.raw()).toString('utf8');

    // Nothing typed or selected ever reaches the output, in any field.
    for (const [field, secret] of Object.entries(secrets)) {
      assert.ok(!raw.includes(secret), `the ${field} field's value must not appear in the NDJSON`);
      assert.ok(!raw.includes(nonce), `no part of the ${field} secret may appear in the NDJSON`);
    }
    assert.ok(!raw.includes('second-option'), 'the select value must not appear in the NDJSON');

    const clicks = tracks(events);
    const summary = clicks.map((e) => (e.event === '$click' ? `$click#${e.properties?.id ?? ''}<${e.properties?.tag}>` : e.event));
    assert.deepEqual(
      summary,
      [
        '$click#link<a>',
        '$click#buy<button>',
        '$click#role-btn<div>',
        '$click#nested<button>',
        '$click#long<button>',
        'Plan Chosen',
        'Banner Clicked',
        '$click#input-button<input>',
        '$click#submit<input>',
        '$click#sentinel<button>',
      ],
      'exactly the captured elements, once each, in order (no plain text, inputs, or .footfall-no-capture)',
    );
    const find = (id) => clicks.find((e) => e.properties?.id === id);

    const link = find('link');
    assert.equal(link.properties.text, 'Go to the anchor');
    assert.ok(String(link.properties.href).endsWith('#anchor'), `href, got ${link.properties.href}`);
    assert.ok(classList(link.properties.classes).includes('nav-link'), `classes, got ${JSON.stringify(link.properties.classes)}`);

    const buy = find('buy');
    assert.equal(buy.properties.tag, 'button');
    assert.equal(buy.properties.text, 'Buy now', 'text is trimmed');
    assert.deepEqual(classList(buy.properties.classes).sort(), ['btn', 'primary']);
    assert.equal(typeof buy.properties.selector, 'string');
    assert.ok(buy.properties.selector.length > 0 && buy.properties.selector.length <= 255, `a short CSS selector, got ${buy.properties.selector}`);
    const matched = await page.evaluate((s) => [...document.querySelectorAll(s)].map((el) => el.id), buy.properties.selector);
    assert.ok(matched.includes('buy'), `selector ${buy.properties.selector} must select #buy, selected ${matched}`);
    const b = boxes['#buy'];
    assert.equal(typeof buy.properties.x, 'number');
    assert.equal(typeof buy.properties.y, 'number');
    assert.ok(buy.properties.x >= b.x - 1 && buy.properties.x <= b.x + b.width + 1, `x ${buy.properties.x} within #buy [${b.x}, ${b.x + b.width}]`);
    assert.ok(buy.properties.y >= b.y - 1 && buy.properties.y <= b.y + b.height + 1, `y ${buy.properties.y} within #buy [${b.y}, ${b.y + b.height}]`);

    assert.equal(find('role-btn').properties.text, 'Role button');
    assert.equal(find('nested').properties.text, 'Nested label', 'a click inside a button is the button’s');
    const long = find('long').properties.text;
    assert.ok(long.length > 0 && long.length <= 255, `text capped at 255 chars, got ${long.length}`);
    assert.ok(/^L+$/.test(long));

    const [plan] = tracks(events, 'Plan Chosen');
    assert.deepEqual(plan.properties, { plan: 'pro', seats: '3' }, 'data-footfall-prop-* become the properties');
    const [banner] = tracks(events, 'Banner Clicked');
    assert.deepEqual(banner.properties, { position: 'top' });
  });

  e2e('50 tracks → all 50 lines exactly once', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { flushIntervalMs: '1000' });
    await page.evaluate(() => {
      for (let i = 0; i < 50; i++) window.ff.track('Bulk', { i });
    });
    await waitForEvents(ingest, byEvent('Bulk'), { count: 50 });
    const events = await settle(ingest, { quietMs: 1500 });
    const bulk = tracks(events, 'Bulk');
    assert.equal(bulk.length, 50, 'exactly 50 lines');
    assert.deepEqual(
      bulk.map((e) => e.properties.i).sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
      'each i exactly once',
    );
    assert.deepEqual(bulk.map((e) => e.properties.i), Array.from({ length: 50 }, (_, i) => i), 'in the order tracked');
    assert.equal(new Set(bulk.map((e) => e.messageId)).size, 50, 'unique messageIds');
    assert.equal(pages(events).length, 1, 'plus the one pageview');
    assert.equal(events.length, 51);
  });

  e2e('3,000 tracks in a burst arrive exactly once, in batches within the ingest limits', async ({ ingest, newContext, open, ingestRequests }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { autocapture: false, maxQueueSize: '5000', flushIntervalMs: '500' });
    await page.evaluate(() => {
      for (let i = 0; i < 3000; i++) window.ff.track('Burst', { i, label: `item-${i}` });
    });
    await waitForEvents(ingest, byEvent('Burst'), { count: 3000, timeoutMs: 30_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    const burst = tracks(events, 'Burst');
    assert.equal(burst.length, 3000);
    assert.equal(new Set(burst.map((e) => e.properties.i)).size, 3000, 'each event exactly once');
    assert.equal(events.length, 3000);
    const bodies = ingestRequests.map((r) => r.postData).filter((b) => typeof b === 'string' && b.startsWith('{'));
    assert.ok(bodies.length >= 2, `sent in several batches, saw ${bodies.length} readable bodies`);
    for (const b of bodies) {
      assert.ok(Buffer.byteLength(b) <= 500_000, `a batch body is ${Buffer.byteLength(b)} bytes`);
      assert.ok(JSON.parse(b).batch.length <= 2500, `a batch has ${JSON.parse(b).batch.length} messages`);
    }
  });

  e2e('a write key the ingest refuses (401) is dropped, not retried', async ({ ingest, newContext, open, ingestRequests, ingestResponses }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { writeKey: 'not-a-key', flushIntervalMs: '200' });
    await page.evaluate(() => window.ff.track('Refused'));
    await waitFor(() => ingestResponses.filter((r) => r.status === 401).length >= 1, { message: 'the ingest answered 401' });
    await page.waitForTimeout(2500); // room for retries that must not happen (backoff starts at 1 s)
    const carrying = ingestRequests.filter((r) => String(r.postData).includes('Refused'));
    assert.equal(carrying.length, 1, `the refused event was sent ${carrying.length} times`);
    await page.reload(); // nor does a reload bring it back from the persisted queue
    await ready(page);
    await page.waitForTimeout(1000);
    assert.equal(ingestRequests.filter((r) => String(r.postData).includes('Refused')).length, 1);
    assert.deepEqual(await ingest.events(), [], 'nothing written for an unknown key');
  });

  e2e('await flush() resolves only once the ingest has written the events', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { autocapture: false, flushIntervalMs: '600000', flushAt: '1000' });
    await page.evaluate(async () => {
      for (let i = 0; i < 10; i++) window.ff.track('Flushed', { i });
      await window.ff.flush();
    });
    // No polling: the lines must already be on disk when flush() resolved.
    assert.equal(tracks(await ingest.events(), 'Flushed').length, 10, 'all 10 lines written before flush() resolved');

    // While the ingest is down, flush() stays pending (a network error is not "failed for good")…
    await ingest.stop();
    await page.evaluate(() => {
      for (let i = 0; i < 3; i++) window.ff.track('Flushed Later', { i });
      window.flushState = 'pending';
      window.ff.flush().then(() => { window.flushState = 'resolved'; }, (e) => { window.flushState = `rejected: ${e}`; });
    });
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.flushState), 'pending', 'flush() waits while the ingest is unreachable');
    // …and resolves once the events are acknowledged after the ingest is back.
    await ingest.restart();
    await waitFor(() => page.evaluate(() => window.flushState !== 'pending'), { timeoutMs: 30_000, message: 'flush() settled after the ingest came back' });
    assert.equal(await page.evaluate(() => window.flushState), 'resolved');
    assert.equal(tracks(await ingest.events(), 'Flushed Later').length, 3, 'the 3 lines were written before flush() resolved');
    const events = await settle(ingest);
    assert.equal(events.length, 13);
  });

  e2e('an event tracked just before the page is closed arrives', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    // Timers and thresholds far away: only the page-hide path can deliver these events.
    const quiet = { flushIntervalMs: '600000', flushAt: '1000' };
    const page = await open(context, '/index.html', { ...quiet, case: 'close' });
    await page.evaluate(() => window.ff.track('Closing Tab', { how: 'close' }));
    await page.close();

    const page2 = await open(context, '/index.html', { ...quiet, case: 'navigate' });
    await page2.evaluate(() => window.ff.track('Navigating Away', { how: 'navigate' }));
    await page2.goto('about:blank');

    await waitForEvents(ingest, (e) => byEvent('Closing Tab')(e) || byEvent('Navigating Away')(e), { count: 2 });
    const events = await settle(ingest);
    assert.equal(tracks(events, 'Closing Tab').length, 1, 'the event before page.close() arrives exactly once');
    assert.equal(tracks(events, 'Navigating Away').length, 1, 'the event before navigating away arrives exactly once');
    // The pageviews queued with them went out on the same page hide; a late resend would be a duplicate.
    assert.equal(pages(events).length, 2, 'both load pageviews arrive exactly once');
  });

  e2e('events tracked while the ingest is down arrive exactly once after it comes back', async ({ ingest, newContext, open, ingestRequests }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { flushIntervalMs: '300' });
    await waitForEvents(ingest, (e) => e.type === 'page');
    assert.equal(await ingest.stop(), 0, 'ingest drains and exits 0 on SIGTERM');

    const failed = [];
    page.on('requestfailed', (r) => {
      if (r.url().startsWith(ingest.url)) failed.push(r.url());
    });
    await page.evaluate(() => {
      for (let i = 0; i < 5; i++) window.ff.track('While Down', { i });
      // flush() must not throw into the page even though nothing can be delivered.
      window.ff.flush().catch(() => {});
    });
    await waitFor(() => failed.length >= 1, { timeoutMs: 10_000, message: 'the SDK tried to send while the ingest was down' });
    const requestsWhileDown = ingestRequests.length;

    await ingest.restart();
    await waitForEvents(ingest, byEvent('While Down'), { count: 5, timeoutMs: 30_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    const down = tracks(events, 'While Down');
    assert.deepEqual(down.map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4], 'each event exactly once');
    assert.equal(events.length, 6, 'pageview + 5 events, nothing twice');
    assert.ok(requestsWhileDown >= 1);
  });

  e2e('events tracked while the ingest is down survive a reload and arrive exactly once', async ({ ingest, newContext, open, url }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { flushIntervalMs: '300', phase: '1' });
    await waitForEvents(ingest, (e) => e.type === 'page');
    await ingest.stop();

    const failed = [];
    page.on('requestfailed', (r) => {
      if (r.url().startsWith(ingest.url)) failed.push(r.url());
    });
    await page.evaluate(() => {
      for (let i = 0; i < 5; i++) window.ff.track('Before Reload', { i });
    });
    await waitFor(() => failed.length >= 1, { timeoutMs: 10_000, message: 'the SDK tried to send while the ingest was down' });

    // A new document: only the persisted queue can carry the first five events now.
    await page.goto(url('/index.html', { flushIntervalMs: '300', phase: '2' }));
    await ready(page);
    await page.evaluate(() => {
      for (let i = 0; i < 3; i++) window.ff.track('After Reload', { i });
    });
    const failedBefore = failed.length;
    await waitFor(() => failed.length > failedBefore, { timeoutMs: 10_000, message: 'the reloaded page tried to send' });

    await ingest.restart();
    await waitForEvents(ingest, (e) => byEvent('Before Reload')(e) || byEvent('After Reload')(e), { count: 8, timeoutMs: 40_000 });
    await waitForEvents(ingest, (e) => e.type === 'page', { count: 2, timeoutMs: 10_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Before Reload').map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4], 'queued before the reload: each exactly once');
    assert.deepEqual(tracks(events, 'After Reload').map((e) => e.properties.i).sort(), [0, 1, 2], 'queued after the reload: each exactly once');
    assert.deepEqual(
      pages(events).map((e) => new URL(e.context.page.url).searchParams.get('phase')),
      ['1', '2'],
      'each load’s pageview exactly once',
    );
    assert.equal(events.length, 10);
    assert.equal(new Set(events.map((e) => e.anonymousId)).size, 1);
  });

  e2e('maxQueueSize bounds the queue while the ingest is down: the oldest are dropped', async ({ ingest, newContext, open }) => {
    await ingest.stop();
    const context = await newContext();
    const page = await open(context, '/index.html', { autocapture: false, maxQueueSize: '5', flushIntervalMs: '300' });
    const failed = [];
    page.on('requestfailed', (r) => {
      if (r.url().startsWith(ingest.url)) failed.push(r.url());
    });
    await page.evaluate(() => {
      for (let i = 0; i < 12; i++) window.ff.track('Queued', { i });
    });
    await waitFor(() => failed.length >= 1, { timeoutMs: 10_000, message: 'the SDK tried to send while the ingest was down' });
    await ingest.restart();
    await waitForEvents(ingest, byEvent('Queued'), { count: 5, timeoutMs: 30_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Queued').map((e) => e.properties.i), [7, 8, 9, 10, 11], 'the 5 newest, in order');
    assert.equal(events.length, 5);
  });

  e2e('a message the ingest rejects (400) is never resent; its batch-mates arrive once', async ({ ingest, newContext, open, ingestRequests, ingestResponses }) => {
    const context = await newContext();
    // This ingest refuses messages over 4,096 bytes; a ~5 KB one is under the SDK's own
    // 30,000-byte cap, so the SDK sends it and the ingest really answers 400 (it writes the
    // batch-mates and rejects only the big one). flushIntervalMs is short so any resend, from the
    // timer or a backoff, would happen many times within the waits below.
    const page = await open(context, '/index.html', { autocapture: false, flushAt: '3', flushIntervalMs: '200' });
    await page.evaluate(() => {
      window.ff.track('Fine Before', { n: 1 });
      window.ff.track('Rejected', { blob: 'B'.repeat(5_000) });
      window.ff.track('Fine After', { n: 2 });
    });
    await waitForEvents(ingest, (e) => byEvent('Fine Before')(e) || byEvent('Fine After')(e), { count: 2 });
    await waitFor(() => ingestResponses.some((r) => r.status === 400), { message: 'the ingest answered 400' });
    await page.waitForTimeout(2_000); // ten flush intervals and past the first backoffs (<= 1 s, 2 s)

    // Later batches still go out: the 400 did not stall the queue.
    await page.evaluate(() => {
      for (let i = 0; i < 3; i++) window.ff.track('Later', { i });
    });
    await waitForEvents(ingest, byEvent('Later'), { count: 3 });
    await page.reload(); // the persisted queue must not bring it back either
    await ready(page);
    await page.evaluate(() => window.ff.track('After Reload'));
    await waitForEvents(ingest, byEvent('After Reload'));
    const events = await settle(ingest, { quietMs: 2000 });

    assert.deepEqual(events.map((e) => e.event), ['Fine Before', 'Fine After', 'Later', 'Later', 'Later', 'After Reload']);
    const carrying = ingestRequests.filter((r) => String(r.postData).includes('BBBBBBBBBB'));
    assert.equal(carrying.length, 1, `the rejected message was sent ${carrying.length} times`);
    const statuses = ingestResponses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 400).length, 1, `exactly one 400: ${statuses}`);
    assert.ok(statuses.every((s) => s === 200 || s === 400), `every other answer is 200: ${statuses}`);
    assert.ok(!(await ingest.raw()).includes('BBBBBBBBBB'), 'nothing of the rejected message is in the NDJSON');
  }, { ingestArgs: ['--max-message-bytes', '4096'] });

  e2e('429 with Retry-After: the SDK waits as told, then every event arrives once', async ({ ingest, newContext, open, ingestResponses }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { autocapture: false, flushAt: '1', flushIntervalMs: '100' });
    // 0.3 requests per second for this write key: the first passes, the next gets 429 with a
    // Retry-After of several seconds — far beyond the SDK's own first backoff (≤ 1 s), so only
    // honouring the header explains the wait.
    for (let i = 0; i < 6; i++) {
      await page.evaluate((n) => window.ff.track('Limited', { n }), i);
      await page.waitForTimeout(50);
    }
    await waitForEvents(ingest, byEvent('Limited'), { count: 6, timeoutMs: 30_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Limited').map((e) => e.properties.n).sort(), [0, 1, 2, 3, 4, 5], 'each exactly once');
    assert.equal(events.length, 6);

    const limited = ingestResponses.filter((r) => r.status === 429);
    assert.ok(limited.length >= 1, `the ingest answered 429 at least once: ${ingestResponses.map((r) => r.status)}`);
    // The wait is measured by the page's own clock (Resource Timing): the moment this process
    // hears of a response can lag the page by 100+ ms on a loaded machine, which once made a
    // correct 4 s wait look like 3.88 s.
    const sent = await page.evaluate(() => performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/v1/batch'))
      .map((e) => ({ start: e.startTime, end: e.responseEnd, status: e.responseStatus })));
    const limitedInPage = sent.filter((e) => e.status === 429);
    assert.equal(limitedInPage.length, limited.length, `the page saw the 429s: ${JSON.stringify(sent)}`);
    limited.forEach((r, k) => {
      const waitMs = Number(r.retryAfter) * 1000;
      assert.ok(waitMs >= 2000, `429 carries a Retry-After of seconds, got ${r.retryAfter}`);
      const answered = limitedInPage[k].end;
      const next = sent.find((e) => e.start > answered);
      if (!next) return;
      // Only timer rounding between the two page timestamps (a few ms).
      assert.ok(next.start - answered >= waitMs - 20, `next request ${next.start - answered} ms after a 429 with Retry-After ${r.retryAfter}`);
    });
  }, { ingestArgs: ['--rate-limit-key', '0.3', '--rate-limit-key-burst', '1'] });

  e2e('a batch larger than the ingest accepts (413) is split and every event arrives once', async ({ ingest, newContext, open, ingestResponses }) => {
    const context = await newContext();
    // flushAt starts one 12-event batch (~50 KB) that a 20 KB limit answers 413. The interval is far
    // away: the halves of a split batch must go out at once, not wait for the next tick.
    const page = await open(context, '/index.html', { autocapture: false, flushAt: '12', flushIntervalMs: '600000' });
    await page.evaluate(() => {
      for (let i = 0; i < 12; i++) window.ff.track('Chunky', { i, pad: String(i % 10).repeat(4_000) });
    });
    await waitForEvents(ingest, byEvent('Chunky'), { count: 12, timeoutMs: 15_000 });
    const events = await settle(ingest, { quietMs: 1500 });
    assert.deepEqual(tracks(events, 'Chunky').map((e) => e.properties.i).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i));
    assert.equal(events.length, 12);
    assert.ok(ingestResponses.some((r) => r.status === 413), `the first batch was answered 413: ${ingestResponses.map((r) => r.status)}`);
  }, { ingestArgs: ['--max-request-bytes', '20000', '--max-message-bytes', '10000'] });

  for (const signal of ['DNT', 'GPC']) {
    e2e(`${signal}: nothing is sent and nothing is stored`, async ({ ingest, newContext, open, ingestRequests }) => {
      const context = await newContext();
      await context.addInitScript((which) => {
        if (which === 'DNT') Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1', configurable: true });
        else Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });
      }, signal);
      const page = await open(context, '/clicks.html', { flushAt: '1', signal });
      await page.evaluate(async () => {
        window.ff.track('Private Event', { secret: 1 });
        window.ff.identify('private-user', { email: 'x@y.z' });
        window.ff.page('Private Page');
        await window.ff.flush();
      });
      await page.click('#buy');
      await page.reload(); // page hide: no beacon either
      await ready(page);
      await page.evaluate(() => window.ff.track('Private After Reload'));
      const stored = await page.evaluate(() => ({ length: localStorage.length, keys: Object.keys(localStorage), cookie: document.cookie }));

      // Control: a context without the signal, same ingest, proves delivery works and gives the
      // private page time to misbehave (its flushAt is 1).
      const control = await newContext();
      const cpage = await open(control, '/index.html', { flushAt: '1' });
      await cpage.evaluate(() => window.ff.track('Control'));
      await waitForEvents(ingest, byEvent('Control'));
      await page.evaluate(() => window.ff.flush());
      const events = await settle(ingest, { quietMs: 1500 });

      const controlAid = await cpage.evaluate(() => window.ff.anonymousId());
      const leaked = events.filter((e) => e.anonymousId !== controlAid);
      assert.deepEqual(leaked, [], `nothing from the ${signal} page reaches the ingest`);
      const privateRequests = ingestRequests.filter((r) => !String(r.postData).includes(controlAid));
      assert.deepEqual(privateRequests, [], `the ${signal} page makes no request to the ingest`);
      assert.deepEqual(stored, { length: 0, keys: [], cookie: '' }, `nothing stored under ${signal}`);
    });
  }

  e2e('respectPrivacySignals: false sends despite DNT', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1', configurable: true });
      Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });
    });
    const page = await open(context, '/index.html', { respectPrivacySignals: 'false' });
    await page.evaluate(() => window.ff.track('Signals Ignored'));
    await waitForEvents(ingest, byEvent('Signals Ignored'));
  });

  e2e('optOut() sends nothing and stores no events until optIn()', async ({ ingest, newContext, open, url, ingestRequests }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { phase: '1' });
    await waitForEvents(ingest, (e) => e.type === 'page');
    const requestsBefore = ingestRequests.length;

    await page.evaluate(async () => {
      window.ff.optOut();
      window.ff.track('Opted Out Event');
      window.ff.page('Opted Out Page');
      window.ff.identify('opted-out-user');
      await window.ff.flush();
    });
    // Consent is persisted: a new document stays opted out, including its load pageview.
    await page.goto(url('/index.html', { phase: '2' }));
    await ready(page);
    await page.evaluate(async () => {
      window.ff.track('Opted Out After Reload');
      await window.ff.flush();
    });
    const storedValues = await page.evaluate(() => Object.entries(localStorage).map(([k, v]) => `${k}=${v}`).join('\n'));
    const cookie = await page.evaluate(() => document.cookie);
    const requestsWhileOptedOut = ingestRequests.slice(requestsBefore);

    await page.evaluate(() => {
      window.ff.optIn();
      window.ff.track('Opted In Event');
    });
    await waitForEvents(ingest, byEvent('Opted In Event'));
    const events = await settle(ingest, { quietMs: 1500 });

    assert.deepEqual(
      events.map((e) => (e.type === 'track' ? e.event : `${e.type}:${new URL(e.context.page.url).searchParams.get('phase')}`)),
      ['page:1', 'Opted In Event'],
      'only the pageview before optOut and the event after optIn',
    );
    // The requests between optOut and optIn: none may carry an opted-out event.
    const optedOutRequests = requestsWhileOptedOut.filter((r) => /Opted Out|opted-out-user|"phase":"2"|phase=2/.test(String(r.postData)));
    assert.deepEqual(optedOutRequests, [], 'no request carries anything tracked while opted out');
    for (const s of ['Opted Out Event', 'Opted Out Page', 'opted-out-user', 'Opted Out After Reload']) {
      assert.ok(!storedValues.includes(s), `"${s}" is not stored in localStorage while opted out:\n${storedValues}`);
      assert.ok(!cookie.includes(encodeURIComponent(s)) && !cookie.includes(s), `"${s}" is not stored in a cookie`);
    }
  });

  const STORAGE_FAILURES = {
    'blocked localStorage (SecurityError on access)': () => {
      Object.defineProperty(window, 'localStorage', {
        configurable: true,
        get() {
          throw new DOMException('The operation is insecure.', 'SecurityError');
        },
      });
    },
    'a full localStorage (QuotaExceededError on write)': () => {
      Storage.prototype.setItem = function setItem() {
        throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      };
    },
  };
  for (const [what, breakStorage] of Object.entries(STORAGE_FAILURES)) {
    e2e(`${what} falls back to cookies without an exception`, async ({ ingest, newContext, open }) => {
      const context = await newContext();
      await context.addInitScript(breakStorage);
      const page = await open(context, '/index.html');
      assert.equal(await page.evaluate(() => { try { localStorage.setItem('probe', '1'); return 'works'; } catch { return 'fails'; } }), 'fails');
      await page.evaluate(() => window.ff.track('Blocked Storage'));
      await waitForEvents(ingest, byEvent('Blocked Storage'));
      const ids = await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId() }));
      assert.ok(await page.evaluate(() => document.cookie.length > 0), 'the ids fell back to a cookie');

      await page.reload();
      await ready(page);
      assert.deepEqual(await page.evaluate(() => ({ aid: window.ff.anonymousId(), sid: window.ff.sessionId() })), ids, 'the cookie fallback keeps the ids across a reload');
      await page.evaluate(() => window.ff.track('Blocked Storage Reloaded'));
      await waitForEvents(ingest, byEvent('Blocked Storage Reloaded'));
      const events = await settle(ingest);
      assert.equal(events.length, 4, 'two pageviews and two tracks');
      assert.equal(new Set(events.map((e) => e.anonymousId)).size, 1);
      assert.equal(new Set(events.map((e) => e.context.sessionId)).size, 1);
    });
  }

  e2e('blocked localStorage and cookies fall back to memory without an exception', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    await context.addInitScript(() => {
      const deny = () => {
        throw new DOMException('The operation is insecure.', 'SecurityError');
      };
      Object.defineProperty(window, 'localStorage', { configurable: true, get: deny });
      Object.defineProperty(window, 'sessionStorage', { configurable: true, get: deny });
      Object.defineProperty(Document.prototype, 'cookie', { configurable: true, get: deny, set: deny });
    });
    const page = await open(context, '/index.html');
    await page.evaluate(() => {
      window.ff.identify('memory-user');
      window.ff.track('Memory Only');
    });
    await waitForEvents(ingest, byEvent('Memory Only'));
    const events = await settle(ingest);
    const [ev] = tracks(events, 'Memory Only');
    assert.equal(ev.userId, 'memory-user');
    assert.match(ev.anonymousId, UUID);
    assert.equal(events.length, 3, 'pageview, identify, track');
  });

  e2e('wrong arguments throw TypeErrors that name the argument', async ({ ingest, newContext, open }) => {
    const context = await newContext();
    const page = await open(context, '/index.html', { noinit: '1' });
    const apiHost = ingest.url;
    const r = await page.evaluate(async (host) => {
      const describe = (e) => (e ? { name: e.name, typeError: e instanceof TypeError, message: String(e.message) } : null);
      const rejects = async (fn) => {
        try {
          await fn();
          return null;
        } catch (e) {
          return describe(e);
        }
      };
      // Tracker methods must throw synchronously (not return a rejected promise).
      const throws = (fn) => {
        try {
          const v = fn();
          if (v && typeof v.then === 'function') v.catch(() => {});
          return null;
        } catch (e) {
          return describe(e);
        }
      };
      const out = {};
      out.noWriteKey = await rejects(() => window.footfallInit({ apiHost: host }));
      out.emptyWriteKey = await rejects(() => window.footfallInit({ writeKey: '', apiHost: host }));
      out.unknownOption = await rejects(() => window.footfallInit({ writeKey: 'dev', apiHost: host, flushEvery: 5 }));
      const ff = await window.footfallInit({ writeKey: 'dev', apiHost: host, autocapture: false, flushIntervalMs: 250 });
      window.ff = ff;
      out.eventNumber = throws(() => ff.track(42));
      out.eventMissing = throws(() => ff.track());
      out.eventObject = throws(() => ff.track({ event: 'x' }));
      out.propsArray = throws(() => ff.track('Bad Props', [1, 2]));
      out.propsString = throws(() => ff.track('Bad Props', 'plan=pro'));
      out.propsDate = throws(() => ff.track('Bad Props', new Date()));
      out.propsClass = throws(() => ff.track('Bad Props', new (class Props { constructor() { this.a = 1; } })()));
      out.pageProps = throws(() => ff.page('Bad Page', [1]));
      out.valid = throws(() => ff.track('Valid After Errors', { ok: true }));
      return out;
    }, apiHost);

    const expectTypeError = (key, argName) => {
      const e = r[key];
      assert.ok(e, `${key}: expected a TypeError, nothing was thrown`);
      assert.equal(e.name, 'TypeError', `${key}: ${JSON.stringify(e)}`);
      assert.equal(e.typeError, true, `${key}: instanceof TypeError`);
      assert.ok(e.message.includes(argName), `${key}: message must name "${argName}", got "${e.message}"`);
    };
    expectTypeError('noWriteKey', 'writeKey');
    expectTypeError('emptyWriteKey', 'writeKey');
    expectTypeError('unknownOption', 'flushEvery');
    expectTypeError('eventNumber', 'event');
    expectTypeError('eventMissing', 'event');
    expectTypeError('eventObject', 'event');
    expectTypeError('propsArray', 'properties');
    expectTypeError('propsString', 'properties');
    expectTypeError('propsDate', 'properties');
    expectTypeError('propsClass', 'properties');
    expectTypeError('pageProps', 'properties');
    assert.equal(r.valid, null, 'a valid call after the errors does not throw');

    await waitForEvents(ingest, byEvent('Valid After Errors'));
    const events = await settle(ingest);
    assert.deepEqual(events.map((e) => e.event ?? e.type), ['Valid After Errors'], 'rejected calls send nothing');
  });
});
