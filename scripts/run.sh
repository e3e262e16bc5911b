#!/usr/bin/env bash
# Runs the Flint server on its embedded default (STORAGE=in-memory unless set) on port 8080.
# Example: STORAGE=standalone scripts/run.sh
#
# One RocksDB build serves run.sh, test.sh and bench.sh. Cargo reuses a compiled crate only if
# the profile and the crate's features, and those of everything it depends on, are the same.
# So all three build in the release profile, and `-p flint-server` here resolves the same
# features for librocksdb-sys and its whole dependency tree (zstd-sys, lz4-sys, libc, and the
# build dependencies bindgen, clang-sys, cc, ...) as test.sh's `--workspace` with
# dev-dependencies: no other workspace crate or dev-dependency turns on a feature in that tree.
# That is why this stays `-p flint-server` rather than `--workspace`. Features that do change the
# tree: flint-server's default `kafka-zstd` (rdkafka's zstd) sets zstd-sys's default features,
# so `--no-default-features` here and not in test.sh would compile RocksDB (~30 min) twice.
# After changing dependencies or features, check that both selections still print the same:
#   for p in librocksdb-sys zstd-sys lz4-sys libc cc bindgen clang-sys; do
#     cargo tree -p flint-server -e normal,build -f '{p} {f}' --depth 0 -i $p; done
#   (and again with `--workspace -e normal,build,dev` instead of `-p flint-server -e normal,build`)
# If they differ, make this script select the same features as test.sh (or build `--workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -p flint-server --bin flint -- "$@"
