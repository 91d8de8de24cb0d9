# Footfall: the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup demo test lint unit wasm-test sdk npm ingest e2e fuzz bench size

setup:
	@bash scripts/setup.sh

## Main job: build the SDK (release), start the ingest with its defaults, serve the demo site.
demo: setup
	@bash scripts/demo.sh

## Every test: formatting, lints, native unit + integration tests, browser tests, end-to-end tests.
test: setup lint unit wasm-test sdk npm size ingest e2e fuzz

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p footfall-sdk --target wasm32-unknown-unknown -- -D warnings

unit:
	cargo test --workspace

wasm-test: sdk
	cd sdk && wasm-pack test --headless --chrome

sdk:
	bash sdk/build.sh

npm: sdk
	bash scripts/build-npm.sh

## Download size (gzip -9, wasm + JS): fails above its ceiling; prints the gap to the 15 KB budget.
size: npm
	bash scripts/size-check.sh

ingest:
	cargo build -p footfall-ingest

e2e: ingest
	cd tests && node --test --test-concurrency=1 *.test.mjs

## Short fuzzing run of every cargo-fuzz target (~15 s each); long runs: see scripts/fuzz-smoke.sh.
fuzz:
	FUZZ_SECONDS=15 bash scripts/fuzz-smoke.sh

bench: setup
	bash scripts/bench.sh
