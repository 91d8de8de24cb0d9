#!/usr/bin/env bash
# Release build of the SDK into sdk/pkg/ (contracts.md, "SDK build contract"). Idempotent.
#   1. wasm-pack (target web, profile wasm-release, no_std: --no-default-features)
#   2. binaryen 132 `wasm-opt -Oz` from npm (never Debian's binaryen: SETUP.md pitfall 1)
#   3. the hand-written adapter sdk/js/* copied next to the glue
# Prints raw and gzip -9 sizes at the end.
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

wasm-pack build --mode no-install --target web --profile wasm-release --out-dir pkg --no-pack \
  -- --no-default-features
"$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  pkg/footfall_sdk_bg.wasm -o pkg/footfall_sdk_bg.wasm
cp js/index.js js/index.d.ts pkg/
rm -f pkg/.gitignore

size() { printf '%-26s %8d B raw  %7d B gzip -9\n' "$1" "$(wc -c <"pkg/$1")" "$(gzip -9c "pkg/$1" | wc -c)"; }
echo "[sdk] sizes (pkg/):"
size footfall_sdk_bg.wasm
size footfall_sdk.js
size index.js
total_gz=$(cat pkg/footfall_sdk_bg.wasm | gzip -9c | wc -c)
js_gz=$(cat pkg/footfall_sdk.js pkg/index.js | gzip -9c | wc -c)
echo "[sdk] wasm + JS (glue+adapter, concatenated) gzip -9: $((total_gz + js_gz)) B"
