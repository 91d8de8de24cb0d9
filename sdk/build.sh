#!/usr/bin/env bash
# Release build of the SDK into sdk/pkg/ (contracts.md, "SDK build contract"). Idempotent.
#   1. cargo, profile wasm-release, no_std (--no-default-features), target wasm32: a wasm with
#      plain exports/imports (src/wasm.rs) — no wasm-bindgen glue (it was 4.5 KB gzip of JS
#      plus the wasm side of ~80 imports)
#   2. binaryen 132 `wasm-opt -Oz` from npm (never Debian's binaryen: SETUP.md pitfall 1), then
#      scripts/scrub-dead-data.mjs (unused panic text zeroed)
#   3. the hand-written JS (sdk/js/*: adapter index.js and its edge modules) next to the wasm
# Prints raw, gzip -9 and brotli sizes at the end.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

BINARYEN_VERSION=132.0.0
wasm_opt=""
for dir in node_modules ../tests/node_modules; do
  if [ -x "$dir/.bin/wasm-opt" ] && grep -q "\"version\": \"$BINARYEN_VERSION\"" "$dir/binaryen/package.json" 2>/dev/null; then
    wasm_opt="$dir/.bin/wasm-opt"
    break
  fi
done
if [ -z "$wasm_opt" ]; then
  echo "[sdk] installing binaryen $BINARYEN_VERSION (npm ci in sdk/)"
  npm ci --no-audit --no-fund --loglevel=error
  wasm_opt=node_modules/.bin/wasm-opt
fi

cargo build -p footfall-sdk --profile wasm-release --target wasm32-unknown-unknown --no-default-features
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
rm -rf pkg
mkdir -p pkg
# --zero-filled-memory / --low-memory-unused: true of our module (it defines its memory; rustc
# places the stack and data above 1 MiB), and they let binaryen fold constants and offsets.
# -tnh (traps never happen): the only traps are Rust's panic paths (bounds checks, allocation
# failure), which the native tests, proptests and fuzz targets hold to never happening; a trap
# would leave the tracker wedged (busy) anyway. Dropping those paths saved 241 B gzip.
# --strip-target-features: the features section (needed by cargo → binaryen, see SETUP.md) is
# of no use to a browser: 134 B gzip. Later wasm-opt runs must pass the --enable-* flags.
"$wasm_opt" -Oz --converge -tnh --zero-filled-memory --low-memory-unused \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --strip-debug --strip-producers --strip-target-features \
  "$target_dir/wasm32-unknown-unknown/wasm-release/footfall_sdk.wasm" -o pkg/footfall_sdk_bg.wasm
# The panic texts and digit table -tnh left unused in the data segment (~320 B gzip): zeroed,
# after checking no code refers to them (scripts/scrub-dead-data.mjs says how).
node scripts/scrub-dead-data.mjs "$(dirname "$wasm_opt")/wasm-dis" pkg/footfall_sdk_bg.wasm
cp js/*.js js/index.d.ts pkg/

size() {
  printf '%-26s %8d B raw  %7d B gzip -9  %7d B brotli\n' "$1" "$(wc -c <"pkg/$1")" \
    "$(gzip -9c "pkg/$1" | wc -c)" "$(node -e 'const z=require("zlib");process.stdout.write(String(z.brotliCompressSync(require("fs").readFileSync(process.argv[1])).length))' "pkg/$1")"
}
echo "[sdk] sizes (pkg/, unminified JS; npm/dist has the minified bundles):"
for f in footfall_sdk_bg.wasm index.js options.js wasm.js storage.js transport.js context.js autocapture.js; do size "$f"; done
