#!/usr/bin/env bash
# Installs the toolchain Footfall needs, idempotently: every step is skipped when already present.
# Only package registries are used (crates.io, npm, Debian apt); see ../shared/SETUP.md.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "[setup] $*"; }

if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  say "adding wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  say "installing chromium + chromium-driver from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! command -v wasm-bindgen >/dev/null 2>&1 || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  # Without --locked: its lock file pins a crate version the registry mirror lacks (SETUP.md).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if ! command -v wasm-pack >/dev/null 2>&1 || [ "$(wasm-pack --version | awk '{print $2}')" != "$WASM_PACK_VERSION" ]; then
  say "installing wasm-pack $WASM_PACK_VERSION (a few minutes)"
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --force
fi

# npm tools (binaryen's wasm-opt, playwright-core, esbuild) live in tests/node_modules and npm/node_modules.
if [ -f tests/package.json ] && [ ! -d tests/node_modules ] || { [ -f tests/package-lock.json ] && [ tests/package-lock.json -nt tests/node_modules ]; }; then
  say "installing test npm packages"
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
say "toolchain ready"
