#!/usr/bin/env bash
# Runs the whole test suite: formatting check, then every test of every crate (unit tests,
# the HTTP tests against the real binary on each storage variant, the FHIRPath and patch
# conformance suites, the kill -9 durability test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo test --workspace --no-fail-fast "$@"
