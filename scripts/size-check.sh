#!/usr/bin/env bash
#! Size check (issue 5), cheap and deterministic, run by `make test`: what a user downloads,
#! gzip -9, for both ways of loading Footfall:
#!   npm user:        npm/dist/index.js   + npm/dist/footfall_bg.wasm
#!   script-tag user: npm/dist/footfall.js + npm/dist/footfall_bg.wasm
#! Two limits:
#!   - the budget, 15 KB (15 × 1024 = 15,360 bytes). Both downloads meet it, and `make test`
#!     fails when either exceeds it (`--budget` and FOOTFALL_SIZE_STRICT=1, the strict mode of
#!     when the tag did not meet it, are still accepted and change nothing).
#!   - the script-tag ceiling: the size this commit measured, plus 64 bytes of slack. `make test`
#!     fails above it even within the budget, so no change makes that download bigger
#!     unnoticed. Lower it as the size drops; raising it is an edit below, with the reason, in
#!     the same commit.
#! Needs npm/dist (`make npm`). Exits non-zero, naming the files and their sizes, when over.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=15360
# The npm download is held to the budget itself. The tag's ceiling: 14,664 measured 2026-12-01
# (was 16,083: esbuild shortening internal property names, and a smaller wasm — no copies of
# the input splitter per export, no Vec<String> per adopted queue, no clone when adopting the
# stored state, unchecked cuts at ASCII bytes, recursive push_u64, v7 ids from a 16-byte draw,
# one batch-body builder; see sdk/README.md) + 64; then 14,730 with the JS edge writing short
# ASCII strings itself (~30 % less main-thread CPU per event, sdk/README.md; +63 B) and the
# store's read/remove/mode names left unmangled (+8): ceiling 14,794; then 14,787 with a command,
# flush or pageview that a page callback makes while the wasm is busy run right after it instead
# of being dropped (+57): ceiling 14,851.
CEILING_NPM=${FOOTFALL_SIZE_CEILING_NPM:-$BUDGET}
CEILING_TAG=${FOOTFALL_SIZE_CEILING_TAG:-14851}
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
for spec in "npm:index.js:$CEILING_NPM" "script-tag:footfall.js:$CEILING_TAG"; do
  IFS=: read -r who js ceiling <<<"$spec"
  js_raw=$(wc -c < "$DIST/$js")
  js_gz=$(gz "$DIST/$js")
  total=$((js_gz + wasm_gz))
  printf 'size-check: %-24s %7s raw %7s gzip -9\n' "$js" "$js_raw" "$js_gz"
  if [ "$total" -gt "$BUDGET" ]; then
    printf 'size-check: OVER BUDGET %-10s %s + footfall_bg.wasm = %d bytes gzip -9 > budget %d by %d bytes\n' \
      "$who" "$js" "$total" "$BUDGET" $((total - BUDGET)) >&2
    fail=1
  elif [ "$total" -gt "$ceiling" ]; then
    printf 'size-check: FAIL %-10s %s + footfall_bg.wasm = %d bytes gzip -9 grew past its ceiling %d by %d bytes (see what the wasm is made of: twiggy top -n 20 %s)\n' \
      "$who" "$js" "$total" "$ceiling" $((total - ceiling)) "$DIST/footfall_bg.wasm" >&2
    fail=1
  else
    printf 'size-check: ok   %-10s %s + footfall_bg.wasm = %d bytes gzip -9 (budget %d, %d to spare; ceiling %d)\n' \
      "$who" "$js" "$total" "$BUDGET" $((BUDGET - total)) "$ceiling"
  fi
done
exit "$fail"
