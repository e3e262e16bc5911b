#!/usr/bin/env bash
# Benchmarks (not tests): builds the release binaries, starts a server per storage variant on
# loopback and runs the flint-bench scenarios against it. Prints one line per scenario.
# Usage: scripts/bench.sh [seconds-per-scenario]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
secs="${1:-10}"
# Release, with the features run.sh and test.sh resolve: reuses their RocksDB build.
cargo build --release -p flint-server -p flint-bench
bin="${CARGO_TARGET_DIR:-target}/release"
for storage in in-memory standalone; do
  data=$(mktemp -d)
  STORAGE=$storage SERVER_PORT=18080 METRICS_SERVER_PORT=18081 LOG_LEVEL=warn \
    INDEX_DB_DIR=$data/index TRANSACTION_DB_DIR=$data/transaction RESOURCE_DB_DIR=$data/resource \
    "$bin/flint" & pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -sf localhost:18080/health >/dev/null && break; sleep 0.1; done
  echo "== STORAGE=$storage"
  for scenario in create read tx100; do
    "$bin/flint-bench" --base http://localhost:18080/fhir --scenario $scenario --clients 16 --seconds "$secs"
  done
  echo "resident memory: $(ps -o rss= -p $pid | awk '{printf "%.0f MB", $1/1024}')"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$data"
done
