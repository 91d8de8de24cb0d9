#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target (about 20 s each), for the test command.
# Installs cargo-fuzz when missing (nightly is installed by scripts/setup.sh).
#
#   scripts/fuzz-smoke.sh                 every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh ingest/fuzz:decode
#   FUZZ_RUNS=10000000 scripts/fuzz-smoke.sh     the long run: 10 million executions per target
#   FUZZ_SANITIZER=none …                        no AddressSanitizer (safe Rust; ~3x the executions/s)
#
# Targets are "fuzz-dir:target" entries; add new ones to TARGETS. A crash fails the script and
# leaves the input under <fuzz-dir>/artifacts/<target>/; keep it as a regression test under
# <fuzz-dir>/regressions/<target>/ (see its README.md), which every run replays first.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(
  "ingest/fuzz:decode"
  "ingest/fuzz:validate_enrich"
  "ingest/fuzz:line_pipeline"
  "ingest/fuzz:router"
  "sdk/fuzz:persisted_state"
  "sdk/fuzz:persisted_queue"
)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi
SECONDS_EACH="${FUZZ_SECONDS:-20}"

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz-smoke: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi

for entry in "${TARGETS[@]}"; do
  dir="${entry%%:*}"
  target="${entry##*:}"
  if [ ! -d "$dir" ]; then
    echo "fuzz-smoke: $dir does not exist (skipping $target)" >&2
    continue
  fi
  if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS")
    echo "fuzz-smoke: $dir $target for $FUZZ_RUNS executions" >&2
  else
    limit=(-max_total_time="$SECONDS_EACH")
    echo "fuzz-smoke: $dir $target for ${SECONDS_EACH}s" >&2
  fi
  mkdir -p "$dir/corpus/$target"
  corpora=("$dir/corpus/$target")
  # Committed seed inputs, when the project has them (read, never written to).
  if [ -d "$dir/seeds/$target" ]; then corpora+=("$dir/seeds/$target"); fi
  # Kept crash inputs (read, never written to): libFuzzer runs every input of every corpus
  # directory before it mutates anything, so one that still crashes fails the run.
  if [ -d "$dir/regressions/$target" ]; then corpora+=("$dir/regressions/$target"); fi
  # -max_total_time (or -runs) bounds the run; the final stats line reports the executions.
  # PIPESTATUS must be read right after the pipeline (a trailing `|| true` would reset it to 0
  # and hide a crash), so errexit is off around it.
  set +e
  cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" --fuzz-dir "$dir" "$target" "${corpora[@]}" -- \
    "${limit[@]}" -print_final_stats=1 2>&1 |
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs|ERROR|panicked|SUMMARY|artifact'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzz-smoke: $dir $target FAILED (exit $status); see $dir/artifacts/$target/" >&2
    exit "$status"
  fi
done
echo "fuzz-smoke: all targets ran clean" >&2
