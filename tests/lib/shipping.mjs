//! Helpers for the shipping e2e tests (tests/shipping.e2e.test.mjs): the built npm package, pages
//! rendered from templates with the ingest's ephemeral URL, the demo site assembled as `make demo`
//! does, `npm pack` + a fresh install of the tarball, and event ordering. Builds on harness.mjs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, TMP_DIR } from './harness.mjs';

export const NPM_DIR = path.join(REPO_ROOT, 'npm');
export const NPM_DIST = path.join(NPM_DIR, 'dist');
export const DIST_FILES = ['index.js', 'index.d.ts', 'footfall.js', 'footfall_bg.wasm', 'snippet.min.js'];

/** Fails loudly (never skips) when `make npm` has not produced npm/dist. */
export function requireDist() {
  for (const f of DIST_FILES) {
    if (!fs.existsSync(path.join(NPM_DIST, f))) {
      throw new Error(`npm/dist/${f} is missing: run \`make npm\` (bash sdk/build.sh && bash scripts/build-npm.sh)`);
    }
  }
}

const made = [];

/** A fresh folder under tests/.tmp, removed by removeTmpDirs() (set FOOTFALL_KEEP_TMP=1 to keep). */
export async function tmpDir(prefix) {
  await fsp.mkdir(TMP_DIR, { recursive: true });
  const dir = await fsp.mkdtemp(path.join(TMP_DIR, prefix));
  made.push(dir);
  return dir;
}

export async function removeTmpDirs() {
  if (process.env.FOOTFALL_KEEP_TMP === '1') return;
  for (const dir of made.splice(0)) await fsp.rm(dir, { recursive: true, force: true });
}

/**
 * Copies the template folder `src` into a fresh temp folder, replacing `{{NAME}}` in .html and .js
 * files with vars[NAME] (an unknown name is an error, so a typo cannot pass silently).
 */
export async function renderPages(src, vars) {
  const out = await tmpDir('pages-');
  for (const name of await fsp.readdir(src)) {
    let body = await fsp.readFile(path.join(src, name));
    if (/\.(html|js)$/.test(name)) {
      body = body.toString('utf8').replace(/\{\{(\w+)\}\}/g, (_, k) => {
        if (!(k in vars)) throw new Error(`${name}: no value for {{${k}}}`);
        return vars[k];
      });
    }
    await fsp.writeFile(path.join(out, name), body);
  }
  return out;
}

/** The minified snippet with its placeholders (script URL and options) replaced. */
export function snippetFor({ src, options }) {
  const min = fs.readFileSync(path.join(NPM_DIST, 'snippet.min.js'), 'utf8').trim();
  const tail = /\(window,document,"\/footfall\.js",\{[^}]*\}\);$/;
  if (!tail.test(min)) throw new Error(`snippet.min.js does not end with the documented call: ${min.slice(-120)}`);
  return min.replace(tail, `(window,document,${JSON.stringify(src)},${JSON.stringify(options)});`);
}

/** The demo site as `scripts/demo.sh` serves it: demo-site/ plus footfall.js and its wasm. */
export async function assembleDemoSite() {
  const out = await tmpDir('demo-site-');
  const src = path.join(REPO_ROOT, 'demo-site');
  for (const name of await fsp.readdir(src)) {
    if (/\.(html|css|js)$/.test(name)) await fsp.copyFile(path.join(src, name), path.join(out, name));
  }
  for (const name of ['footfall.js', 'footfall_bg.wasm']) {
    await fsp.copyFile(path.join(NPM_DIST, name), path.join(out, name));
  }
  return out;
}

/** Runs a command; resolves with its output, rejects with the output's tail on a non-zero exit. */
export function run(cmd, args, { cwd, env, timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: code ${code} signal ${signal}\n${out.slice(-4000)}`));
    });
  });
}

/** `npm pack` of npm/ into a temp folder: { tarball, files: [{path, size}] } (what users download). */
export async function packNpm() {
  const dest = await tmpDir('pack-');
  const out = await run('npm', ['pack', '--json', '--pack-destination', dest, '--loglevel=error'], { cwd: NPM_DIR });
  const [info] = JSON.parse(out.slice(out.indexOf('[')));
  return { tarball: path.join(dest, info.filename), files: info.files };
}

/**
 * Copies tests/fixtures/<name> into a temp folder, points its `footfall` dependency at the tarball,
 * installs (npm registry for the bundler, the tarball for footfall), runs its `typecheck` script
 * when it has one, then `build`. Returns the app folder (its dist/ is the built site).
 */
export async function buildFixtureApp(name, tarball) {
  const app = await tmpDir(`${name}-`);
  const src = path.join(REPO_ROOT, 'tests', 'fixtures', name);
  await fsp.cp(src, app, {
    recursive: true,
    filter: (p) => !/[\\/](node_modules|dist)([\\/]|$)/.test(path.relative(src, p)),
  });
  const pkgPath = path.join(app, 'package.json');
  const pkg = JSON.parse(await fsp.readFile(pkgPath, 'utf8'));
  pkg.dependencies.footfall = `file:${tarball}`;
  await fsp.writeFile(pkgPath, JSON.stringify(pkg, null, 2));
  const npmArgs = ['--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline'];
  await run('npm', ['install', ...npmArgs], { cwd: app });
  if (pkg.scripts.typecheck) await run('npm', ['run', 'typecheck'], { cwd: app });
  await run('npm', ['run', 'build'], { cwd: app });
  return app;
}

/**
 * Events in the order they happened: by the client's own time (`originalTimestamp`, kept by the
 * ingest, whose `timestamp` is skew-corrected per request), ties kept in NDJSON (arrival) order.
 */
export function byTimestamp(events) {
  return events
    .map((e, i) => [Date.parse(e.originalTimestamp ?? e.timestamp), i, e])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map((x) => x[2]);
}

/** A compact, readable descriptor of one message for line-by-line comparisons. */
export function describe(e) {
  if (e.type === 'page') return `page ${e.context?.page?.path}${e.context?.page?.search ?? ''}`;
  if (e.type === 'track') return `track ${e.event}`;
  if (e.type === 'identify') return `identify ${e.userId}`;
  return e.type;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Starts the Vite dev server of a built fixture app (`vite` from its own node_modules) on a free
 * port: { url, stop() }. The dev server serves the package from node_modules, unbundled.
 */
export async function startViteDev(app) {
  const vite = path.join(app, 'node_modules', 'vite', 'bin', 'vite.js');
  const p = spawn(process.execPath, [vite, '--host', '127.0.0.1', '--port', '0', '--clearScreen', 'false'], {
    cwd: app,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vite dev did not start:\n${out}`)), 30_000);
    const onData = (c) => {
      out += c;
      const m = /Local:\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`vite dev exited (${code}):\n${out}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
      }),
  };
}
