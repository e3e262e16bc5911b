#!/usr/bin/env bash
# Runs the whole test suite: formatting check, the crate dependency rules of ARCHITECTURE.md,
# clippy, then every test of every crate (unit tests, the HTTP tests against the real binary
# on each storage variant, the FHIRPath and patch conformance suites, the kill -9 durability
# test).
#
# Everything builds in the release profile, like scripts/run.sh: RocksDB's C++ build (~30 min
# on 2 cores) is then compiled once and shared by the server, clippy and the tests (see the
# comment in scripts/run.sh on why the features match). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The reference CQL-to-ELM translator (npm) for flint-cql's ELM differential test.
scripts/fetch-cql-translator.sh
cargo fmt --all -- --check
python3 scripts/check-deps.py
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast "$@"
