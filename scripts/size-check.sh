#!/usr/bin/env bash
#! Size budget check (issue 5), cheap and deterministic, for `make test`: what a user downloads,
#! gzip -9, must total ≤ 15 KB (15 × 1024 = 15,360 bytes) for both ways of loading Footfall:
#!   npm user:        npm/dist/index.js   + npm/dist/footfall_bg.wasm
#!   script-tag user: npm/dist/footfall.js + npm/dist/footfall_bg.wasm
#! Needs npm/dist (`make npm`). Exits non-zero, naming the files and their sizes, when over budget.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=${FOOTFALL_SIZE_BUDGET:-15360}
DIST=npm/dist
fail=0

gz() { gzip -9 -n -c "$1" | wc -c; }

for f in index.js footfall.js footfall_bg.wasm; do
  if [ ! -s "$DIST/$f" ]; then
    echo "size-check: FAIL: $DIST/$f is missing or empty (run \`make npm\` first)" >&2
    exit 1
  fi
done

wasm_raw=$(wc -c < "$DIST/footfall_bg.wasm")
wasm_gz=$(gz "$DIST/footfall_bg.wasm")
printf 'size-check: %-24s %7s raw %7s gzip -9\n' "footfall_bg.wasm" "$wasm_raw" "$wasm_gz"
for pair in "npm:index.js" "script-tag:footfall.js"; do
  who=${pair%%:*}
  js=${pair#*:}
  js_raw=$(wc -c < "$DIST/$js")
  js_gz=$(gz "$DIST/$js")
  total=$((js_gz + wasm_gz))
  printf 'size-check: %-24s %7s raw %7s gzip -9\n' "$js" "$js_raw" "$js_gz"
  if [ "$total" -le "$BUDGET" ]; then
    printf 'size-check: ok   %-10s %s + footfall_bg.wasm = %d bytes gzip -9 (budget %d, %d to spare)\n' \
      "$who" "$js" "$total" "$BUDGET" $((BUDGET - total))
  else
    printf 'size-check: FAIL %-10s %s + footfall_bg.wasm = %d bytes gzip -9 > budget %d bytes by %d bytes\n' \
      "$who" "$js" "$total" "$BUDGET" $((total - BUDGET)) >&2
    printf 'size-check:      see what the wasm is made of: twiggy top -n 20 %s\n' "$DIST/footfall_bg.wasm" >&2
    fail=1
  fi
done
exit "$fail"
