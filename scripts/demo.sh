#!/usr/bin/env bash
#! `make demo`: builds the SDK (release) and the npm dist, copies the demo site plus the script-tag
#! build into target/demo-site/, and runs footfall-ingest with its defaults (127.0.0.1:8080, data
#! under ./data, write key `dev`) plus `--static-dir`, so one origin serves the pages and /v1/batch.
#! Prints the URL to open and the NDJSON path to `tail -f`. Ctrl-C stops the ingest.
#! Overrides: FOOTFALL_DEMO_LISTEN (default 127.0.0.1:8080), FOOTFALL_INGEST_BIN (skip the cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[demo] $*"; }

[ -d tests/node_modules ] || bash scripts/setup.sh

say "building the SDK (release wasm)"
bash sdk/build.sh
say "building the npm package (npm/dist)"
bash scripts/build-npm.sh

BIN="${FOOTFALL_INGEST_BIN:-}"
if [ -z "$BIN" ]; then
  say "building footfall-ingest (release)"
  cargo build --release -p footfall-ingest
  BIN=target/release/footfall-ingest
fi

SITE=target/demo-site
rm -rf "$SITE"
mkdir -p "$SITE"
cp demo-site/*.html demo-site/*.css demo-site/*.js "$SITE"/
cp npm/dist/footfall.js npm/dist/footfall_bg.wasm "$SITE"/

LISTEN="${FOOTFALL_DEMO_LISTEN:-127.0.0.1:8080}"
OUT=$(mktemp)
"$BIN" --listen "$LISTEN" --static-dir "$SITE" >"$OUT" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$OUT"' EXIT
trap 'exit 130' INT TERM

# Wait for the ingest's one stdout line: "footfall-ingest listening on http://HOST:PORT".
URL=""
for _ in $(seq 1 100); do
  URL=$(sed -n 's/^footfall-ingest listening on \(http[^ ]*\)$/\1/p' "$OUT" | head -1)
  [ -n "$URL" ] && break
  kill -0 "$PID" 2>/dev/null || { echo "[demo] footfall-ingest exited (is $LISTEN in use? set FOOTFALL_DEMO_LISTEN)" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "[demo] footfall-ingest did not start" >&2; exit 1; }

cat <<MSG

  Footfall demo is running.

    Open:      $URL/
    Watch:     tail -f data/dev/dt=\$(date -u +%F)/*.ndjson.open
               (the file appears with the first event, ~5 s after the first page view;
                finished files are renamed to *.ndjson on rotation and on shutdown)

  Ctrl-C stops the ingest.

MSG
wait "$PID"
