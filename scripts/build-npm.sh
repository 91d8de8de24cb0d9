#!/usr/bin/env bash
#! Builds the `footfall` npm package into npm/dist/ from sdk/pkg/ (run `bash sdk/build.sh` first;
#! `make npm` does both). esbuild and binaryen come from tests/node_modules (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x tests/node_modules/.bin/esbuild ] || [ ! -x tests/node_modules/.bin/wasm-opt ]; then
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
node npm/scripts/build.mjs
