//! Builds the `footfall` npm package (npm/dist/) from the SDK's release build (sdk/pkg/, written by
//! sdk/build.sh: the wasm plus the JS adapter and edges).
//! Owns: bundling + minifying the ES module and the script-tag build with esbuild (the SDK's
//! adapter and its JS edge modules; the wasm has no generated glue), renaming the wasm
//! to footfall_bg.wasm (and every reference to it), binaryen `wasm-opt -Oz`, the types, the snippet.
//! Tools come from tests/node_modules (esbuild, binaryen), installed by scripts/setup.sh.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const npmDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(npmDir, '..');
// FOOTFALL_SDK_PKG points at another SDK build folder (same file names), e.g. a profiling build.
const pkgDir = resolve(process.env.FOOTFALL_SDK_PKG || join(root, 'sdk', 'pkg'));
const dist = join(npmDir, 'dist');
const toolsDir = join(root, 'tests', 'node_modules');
const WASM_IN = 'footfall_sdk_bg.wasm';
const WASM_OUT = 'footfall_bg.wasm';

function fail(msg) {
  console.error(`[build-npm] ${msg}`);
  process.exit(1);
}

for (const f of ['index.js', 'wasm.js', WASM_IN]) {
  if (!existsSync(join(pkgDir, f))) fail(`missing sdk/pkg/${f}: run \`make sdk\` (bash sdk/build.sh) first`);
}
if (!existsSync(join(toolsDir, 'esbuild'))) fail('missing tests/node_modules/esbuild: run `bash scripts/setup.sh`');
const esbuild = createRequire(join(toolsDir, 'x.js'))('esbuild');

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

// The package ships the wasm as footfall_bg.wasm; rewrite the loader's reference
// (`'./footfall_sdk_bg.wasm'`) to './footfall_bg.wasm'.
// A bare name would be resolved by webpack as a package, so the './' matters.
// The entries import 'footfall-sdk-pkg', resolved here to the pkg folder's adapter.
const renameWasm = {
  name: 'sdk-pkg',
  setup(build) {
    build.onResolve({ filter: /^footfall-sdk-pkg$/ }, () => ({ path: join(pkgDir, 'index.js') }));
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(pkgDir)) return undefined;
      const src = readFileSync(args.path, 'utf8');
      const out = src.replace(/(['"`])(?:\.\/)?footfall_sdk_bg\.wasm\1/g, `$1./${WASM_OUT}$1`);
      return { contents: out, loader: 'js' };
    });
  },
};

// Property names the bundle uses only between its own modules (the bridge of wasm.js, the store
// of storage.js, the parsed options of options.js), shortened by esbuild: −48 B gzip per bundle.
// Never a name a page, the snippet or a user's options object can see (no option name, no
// tracker method, nothing of `window.footfall`, no DOM or built-in property: `max`, `url` stay).
// esbuild renames the name on every object, so the store's `read`, `remove` and `mode` are left
// out too (8 B): a later `el.remove()` or `reader.read()` in the SDK would be renamed with them.
// The browser tests import sdk/js unbundled, so they still see the long names.
const INTERNAL_PROPS =
  /^(view|str|put|enc|attrs|queueKey|writeState|writeQueue|queues|newKey|idle|interval|maxQueue|respect)$/;

const common = {
  bundle: true,
  minify: true,
  mangleProps: INTERNAL_PROPS,
  legalComments: 'none',
  target: ['es2020'],
  plugins: [renameWasm],
  logLevel: 'warning',
  write: false,
};

// 1. ES module for bundlers and <script type="module">.
const esm = await esbuild.build({
  ...common,
  entryPoints: [join(npmDir, 'src', 'index.js')],
  format: 'esm',
  platform: 'browser',
});
const esmJs = esm.outputFiles[0].text;

// 2. Script-tag build: a classic script. `import.meta` does not exist there, so the adapter's
// `import.meta.url` is pointed at the URL of footfall.js itself (src/script-url.js).
const iife = await esbuild.build({
  ...common,
  entryPoints: [join(npmDir, 'src', 'script.js')],
  format: 'iife',
  platform: 'browser',
  inject: [join(npmDir, 'src', 'script-url.js')],
  define: { 'import.meta.url': 'footfallScriptUrl' },
});
const scriptJs = iife.outputFiles[0].text;

// 3. The copy-paste snippet, minified (the README shows this text).
const snip = await esbuild.build({
  ...common,
  plugins: [],
  entryPoints: [join(npmDir, 'snippet', 'snippet.js')],
  format: 'esm', // the source is already a self-calling function: no wrapper needed
  target: ['es5'],
});
const snippetJs = snip.outputFiles[0].text.trim();

// Guard the one thing bundlers depend on: the wasm is referenced exactly by its shipped name.
const ref = `new URL("./${WASM_OUT}",import.meta.url)`;
if (!esmJs.includes(ref)) fail(`dist/index.js lacks ${ref}; the SDK adapter changed how it loads the wasm`);
for (const [name, js] of [['index.js', esmJs], ['footfall.js', scriptJs]]) {
  if (js.includes(WASM_IN)) fail(`dist/${name} still references ${WASM_IN}`);
}
if (scriptJs.includes('import.meta')) fail('dist/footfall.js references import.meta (not valid in a classic script)');

writeFileSync(join(dist, 'index.js'), esmJs);
writeFileSync(join(dist, 'footfall.js'), scriptJs);
writeFileSync(join(dist, 'snippet.min.js'), snippetJs + '\n');
copyFileSync(join(npmDir, 'src', 'index.d.ts'), join(dist, 'index.d.ts'));

// 4. The wasm: the SDK build already ran `wasm-opt -Oz`; run it again only to be sure a release
// package never ships an unoptimised module, and keep whichever is smaller gzipped (the
// download: a second pass splits the SDK build's zeroed dead data into more segments, which is
// fewer raw bytes but more gzip bytes).
const wasmSrc = join(pkgDir, WASM_IN);
const wasmDst = join(dist, WASM_OUT);
const wasmOpt = join(toolsDir, '.bin', 'wasm-opt');
if (!existsSync(wasmOpt)) fail('missing tests/node_modules/.bin/wasm-opt (binaryen 132): run `bash scripts/setup.sh`');
// The SDK build strips the target-features section, so the features are named here.
const features = ['--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext', '--enable-mutable-globals'];
execFileSync(wasmOpt, ['-Oz', ...features, '--strip-debug', '--strip-producers', '--strip-target-features', wasmSrc, '-o', wasmDst], {
  stdio: 'inherit',
});
const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length;
if (gz(wasmDst) >= gz(wasmSrc)) copyFileSync(wasmSrc, wasmDst);

for (const f of ['index.js', 'footfall.js', 'footfall_bg.wasm', 'index.d.ts', 'snippet.min.js']) {
  console.log(`[build-npm] dist/${f.padEnd(18)} ${String(statSync(join(dist, f)).size).padStart(7)} bytes`);
}
