//! Local HTTP servers for the SDK benchmark: a static server for the benchmark pages and the
//! artefacts a user downloads, and a counting sink standing in for the peers' collectors.
//!
//! The sink answers 200 to anything (the peers' wire formats differ from ours, so their requests
//! cannot go to footfall-ingest) and counts requests, bytes and — where it can decode the body —
//! the `evt` events that reached it, so a peer's "delivered" figure is measured, not assumed.
//! Footfall itself always talks to the real ingest.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** Serves files from `mounts` ({ '/prefix/': '/abs/dir' }), longest prefix first. Counts bytes
 * served per path so a page's download can be cross-checked against what the browser fetched. */
export function staticServer(mounts) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const served = new Map();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const prefix = prefixes.find((p) => url.pathname.startsWith(p));
    if (!prefix) return notFound(res);
    const root = mounts[prefix];
    const file = path.join(root, decodeURIComponent(url.pathname.slice(prefix.length)));
    if (!file.startsWith(root)) return notFound(res);
    fs.readFile(file, (err, data) => {
      if (err) return notFound(res);
      if (file.endsWith('.html')) {
        // Pages are templates: the collector's origin comes from `?api=` (loopback only).
        const api = url.searchParams.get('api') || '';
        if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(api)) return notFound(res);
        data = Buffer.from(data.toString('utf8').replaceAll('__API_HOST__', api));
      }
      served.set(url.pathname, data.length);
      // no-store: every load in the benchmark is a first visit; fresh contexts make sure anyway.
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Content-Length': data.length,
        'Cache-Control': 'no-store',
      });
      res.end(data);
    });
  });
  return listen(server, { served });
}

function notFound(res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
}

/** Counts every request; decodes JSON, gzip and PostHog's base64/form bodies to count `evt`. */
export function countingSink() {
  const stats = { requests: 0, bodyBytes: 0, events: 0, undecoded: 0, paths: {} };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, 'http://x');
      const origin = req.headers.origin;
      const cors = {
        'Access-Control-Allow-Origin': origin || '*',
        'Access-Control-Allow-Credentials': 'true',
        'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] || '*',
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
      };
      if (req.method === 'OPTIONS') {
        res.writeHead(204, cors);
        return res.end();
      }
      stats.requests += 1;
      stats.bodyBytes += body.length;
      stats.paths[url.pathname] = (stats.paths[url.pathname] || 0) + 1;
      if (req.method === 'POST' && body.length) {
        const n = countEvents(body, url, req.headers['content-type'] || '');
        if (n === null) stats.undecoded += 1;
        else stats.events += n;
      }
      // Script requests (PostHog lazy-loads extensions from its host) get an empty script;
      // everything else a JSON object, which both peers accept as "ok / no remote config".
      const isScript = /\.js$/.test(url.pathname);
      res.writeHead(200, { ...cors, 'Content-Type': isScript ? 'text/javascript' : 'application/json' });
      res.end(isScript ? '' : '{}');
    });
  });
  return listen(server, {
    stats,
    reset() {
      Object.assign(stats, { requests: 0, bodyBytes: 0, events: 0, undecoded: 0, paths: {} });
    },
  });
}

/** Number of `evt` events in a peer's request body, or null when it cannot be decoded. */
export function countEvents(body, url, contentType) {
  let text;
  try {
    let buf = body;
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
    text = buf.toString('utf8');
    if (contentType.includes('application/x-www-form-urlencoded') || text.startsWith('data=')) {
      const data = new URLSearchParams(text).get('data');
      text = Buffer.from(data, 'base64').toString('utf8');
    }
    const json = JSON.parse(text);
    const list = Array.isArray(json) ? json : json.batch || json.data || [json];
    const items = Array.isArray(list) ? list : [list];
    return items.filter((m) => m && m.event === 'evt').length;
  } catch {
    return null;
  }
}

function listen(server, extra) {
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.keepAliveTimeout = 60_000;
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        origin: `http://127.0.0.1:${port}`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
        ...extra,
      });
    });
  });
}
