#!/usr/bin/env bash
# Runs the Flint server on its embedded default (STORAGE=in-memory unless set) on port 8080.
# Example: STORAGE=standalone scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release -p flint-server --bin flint -- "$@"
