#!/usr/bin/env bash
#! `make bench` (issue 5): installs what the benchmarks need, builds the release artefacts, runs the
#! SDK benchmark (real Chromium: Footfall vs posthog-js and @segment/analytics-next) and the ingest
#! benchmark (wrk: footfall-ingest `--fsync always` vs nginx `return 204;`), then prints one table
#! and writes it, dated, to bench/results/latest.md. Ratios compare figures from this one run.
#!
#! Env: BENCH_SKIP_BUILD=1 reuses existing artefacts; BENCH_ONLY=sdk|ingest runs one side (ingest includes callgrind);
#! BENCH_STRICT=1 exits 1 when a budget fails; SDK_BENCH_ARGS / INGEST_BENCH_ARGS are passed on
#! (e.g. SDK_BENCH_ARGS=--profile writes Chromium CPU profiles to bench/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[bench] $*" >&2; }

# --- tools: wrk and nginx-light from Debian, the benchmark's npm packages ---------------------------
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f bench/node_modules/.package-lock.json ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  say "installing bench/ npm packages (peers, playwright-core, esbuild)"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- release artefacts ----------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
  say "building footfall-ingest (release)"
  cargo build --release -p footfall-ingest
  say "building the SDK (sdk/pkg, release wasm) and the npm package (npm/dist)"
  bash sdk/build.sh
  if [ -f scripts/build-npm.sh ]; then bash scripts/build-npm.sh; fi
fi

# --- runs (one after the other, so they do not share the cores with each other) --------------------
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
# Only this run's results go into the table.
rm -f bench/results/sdk.json bench/results/ingest.json bench/results/callgrind.json
if [ "${BENCH_ONLY:-sdk}" = "sdk" ]; then
  say "SDK benchmark (Chromium; ~3-4 min: the peers take seconds per 10,000 calls)"
  # shellcheck disable=SC2086
  node bench/sdk.bench.mjs ${SDK_BENCH_ARGS:-} || status=1
fi
if [ "${BENCH_ONLY:-ingest}" = "ingest" ]; then
  say "ingest benchmark (wrk; ~2-3 min)"
  # shellcheck disable=SC2086
  node bench/ingest.bench.mjs ${INGEST_BENCH_ARGS:-} || status=1
fi
if [ "${BENCH_ONLY:-callgrind}" = "callgrind" ] || [ "${BENCH_ONLY:-}" = "ingest" ]; then
  say "ingest instruction counts under callgrind (~30 s)"
  node bench/ingest.callgrind.mjs || status=1
fi
node bench/report.mjs || status=1
say "table written to bench/results/latest.md"
exit "$status"
