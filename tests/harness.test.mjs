//! Tests of the e2e harness itself (tests/lib/harness.mjs) that need neither the SDK nor the
//! ingest: NDJSON reading (order, `.open` files, torn or invalid lines are errors, never skipped),
//! the static server (routes, MIME types, extra headers, no path traversal) and the polling helper.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { readEvents, readRawNdjson, startStatic, TMP_DIR, waitFor } from './lib/harness.mjs';

async function tempDir() {
  await fsp.mkdir(TMP_DIR, { recursive: true });
  return fsp.mkdtemp(path.join(TMP_DIR, 'harness-'));
}

test('readEvents reads .ndjson and .ndjson.open files in path order', async () => {
  const dir = await tempDir();
  try {
    const day = path.join(dir, 'dev', 'dt=2026-01-02');
    await fsp.mkdir(day, { recursive: true });
    await fsp.writeFile(path.join(day, '10-0001.ndjson'), '{"n":1}\n{"n":2}\n');
    await fsp.writeFile(path.join(day, '10-0002.ndjson.open'), '{"n":3}\n');
    await fsp.writeFile(path.join(day, 'notes.txt'), 'not ndjson\n');
    await fsp.mkdir(path.join(dir, 'dev', 'dt=2026-01-01'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'dev', 'dt=2026-01-01', '23-0001.ndjson'), '{"n":0}\n');
    assert.deepEqual((await readEvents(dir)).map((e) => e.n), [0, 1, 2, 3]);
    assert.equal((await readRawNdjson(dir)).toString(), '{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readEvents throws on a torn last line, an invalid line, or a non-object', async () => {
  const dir = await tempDir();
  try {
    const f = path.join(dir, 'a.ndjson');
    await fsp.writeFile(f, '{"n":1}\n{"n":');
    await assert.rejects(readEvents(dir), /torn/);
    await fsp.writeFile(f, '{"n":1}\nnope\n');
    await assert.rejects(readEvents(dir), /not JSON/);
    await fsp.writeFile(f, '[1]\n');
    await assert.rejects(readEvents(dir), /not a JSON object/);
    await fsp.writeFile(f, '');
    assert.deepEqual(await readEvents(dir), []);
    assert.deepEqual(await readEvents(path.join(dir, 'missing')), []);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      })
      .on('error', reject);
  });
}

test('startStatic serves routes with MIME types and extra headers, and no traversal', async () => {
  const dir = await tempDir();
  const pkg = path.join(dir, 'pkg');
  await fsp.mkdir(pkg);
  await fsp.writeFile(path.join(dir, 'index.html'), '<p>hi</p>');
  await fsp.writeFile(path.join(dir, 'secret.txt'), 'root only');
  await fsp.writeFile(path.join(pkg, 'index.js'), 'export {}');
  await fsp.writeFile(path.join(pkg, 'x_bg.wasm'), Buffer.from([0, 97, 115, 109]));
  const web = await startStatic({
    '/': dir,
    '/pkg/': pkg,
    '/csp/': { dir, headers: { 'Content-Security-Policy': "script-src 'self'" } },
  });
  try {
    let r = await get(`${web.url}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html/);
    r = await get(`${web.url}/pkg/index.js`);
    assert.match(r.headers['content-type'], /^text\/javascript/);
    r = await get(`${web.url}/pkg/x_bg.wasm`);
    assert.equal(r.headers['content-type'], 'application/wasm');
    assert.equal(r.headers['cache-control'], 'no-store');
    r = await get(`${web.url}/csp/index.html`);
    assert.equal(r.headers['content-security-policy'], "script-src 'self'");
    r = await get(`${web.url}/pkg/..%2fsecret.txt`);
    assert.equal(r.status, 403);
    r = await get(`${web.url}/nope.js`);
    assert.equal(r.status, 404);
  } finally {
    await web.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('waitFor returns the first truthy value and times out with the last error', async () => {
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? 'done' : null), { intervalMs: 1 }), 'done');
  await assert.rejects(
    waitFor(() => {
      throw new Error('still broken');
    }, { timeoutMs: 50, intervalMs: 5, message: 'never' }),
    /never[\s\S]*still broken/,
  );
});

test('startIngest runs the real binary: batch in, NDJSON out, stop renames, restart keeps port and data', async () => {
  const { startIngest } = await import('./lib/harness.mjs');
  const ingest = await startIngest();
  try {
    assert.match(ingest.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const send = (messageId) =>
      fetch(`${ingest.url}/v1/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
        body: JSON.stringify({
          writeKey: 'dev',
          sentAt: new Date().toISOString(),
          batch: [{ type: 'track', event: 'Harness', anonymousId: 'a-1', messageId, timestamp: new Date().toISOString() }],
        }),
      });
    let res = await send('harness-1');
    assert.equal(res.status, 200, await res.text());
    let events = await ingest.events();
    assert.deepEqual(events.map((e) => [e.event, e.messageId, e.source]), [['Harness', 'harness-1', 'dev']]);

    assert.equal(await ingest.stop(), 0, 'SIGTERM exits 0');
    assert.equal(ingest.running, false);
    const files = [];
    const walk = async (d) => {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(path.join(d, e.name));
        else files.push(e.name);
      }
    };
    await walk(ingest.dataDir);
    assert.ok(files.some((f) => f.endsWith('.ndjson')), `a closed .ndjson file after shutdown: ${files}`);
    assert.ok(!files.some((f) => f.endsWith('.open')), `no .open file after shutdown: ${files}`);

    const port = ingest.port;
    await ingest.restart();
    assert.equal(ingest.port, port);
    res = await send('harness-2');
    assert.equal(res.status, 200);
    events = await ingest.events();
    assert.deepEqual(events.map((e) => e.messageId), ['harness-1', 'harness-2']);
  } finally {
    await ingest.cleanup();
  }
});
