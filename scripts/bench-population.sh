#!/usr/bin/env bash
# Runs the search, read, write and history scenarios of issue 5 (Blaze's published FHIR search
# scenarios, reference §4.4) against a running Flint (or any FHIR server) loaded with a
# generated population (`flint-gen`, then `flint-load`). Prints one line per scenario
# (flint-bench's throughput and p50/p95/p99) and the server's resident memory when its pid is
# given. Not a test: numbers go to docs/performance.md.
#
# Usage: scripts/bench-population.sh BASE_URL [seconds-per-scenario] [server-pid] [data-dir]
#   e.g. scripts/bench-population.sh http://localhost:18100/fhir 5 12345 /data/gen1k
# With data-dir (the bundles that were loaded), "many codes" uses up to 100 distinct LOINC
# codes of Observations found in its first 100 bundles.
# Environment: FLINT_BENCH (path of the flint-bench binary; default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?usage: $0 BASE_URL [seconds] [server-pid]}"
secs="${2:-5}"
pid="${3:-}"
data="${4:-}"
bench="${FLINT_BENCH:-${CARGO_TARGET_DIR:-target}/release/flint-bench}"
loinc="http%3A%2F%2Floinc.org%7C"
rss() { [ -n "$pid" ] && echo "   resident memory: $(ps -o rss= -p "$pid" | awk '{printf "%.0f MB", $1/1024}')" || true; }
run() { # name, then flint-bench arguments
  local name="$1"; shift
  printf '%-58s ' "$name"
  "$bench" --base "$base" --seconds "$secs" "$@" | tail -1
}
count() { run "count: $1" --scenario search --clients 4 --query "$1&_summary=count"; }

rss
count "Observation?code=${loinc}8310-5"
count "Observation?code=${loinc}29463-7"
count "Observation?code=${loinc}8867-4"
ten="8310-5,29463-7,8867-4,8302-2,39156-5,8462-4,8480-6,9279-1,72514-3,2339-0"
tenq=$(echo "$ten" | sed "s/\([^,]*\)/${loinc}\1/g; s/,/%2C/g")
count "Observation?code=$tenq"
if [ -n "$data" ]; then
  many=$(python3 -c '
import json, os, sys
codes = []
for f in sorted(os.listdir(sys.argv[1]))[:100]:
    for e in json.load(open(os.path.join(sys.argv[1], f))).get("entry", []):
        r = e.get("resource", {})
        if r.get("resourceType") == "Observation":
            for c in r.get("code", {}).get("coding", []):
                if c.get("system") == "http://loinc.org" and c["code"] not in codes:
                    codes.append(c["code"])
print(" ".join(codes[:100]))' "$data")
  manyq=$(for c in $many; do printf '%s%s%%2C' "$loinc" "$c"; done | sed 's/%2C$//')
  run "count: Observation?code=<$(echo "$many" | wc -w) codes>" --scenario search --clients 4 \
    --query "Observation?code=$manyq&_summary=count"
fi
count "Observation?category=laboratory&code=${loinc}2339-0,${loinc}718-7,${loinc}2160-0,${loinc}6690-2,${loinc}789-8"
count "Observation?code=${loinc}29463-7&value-quantity=lt60"
count "Observation?code=${loinc}29463-7&date=2020"
count "Observation?category=laboratory&date=2020"
count "Observation?category=laboratory&patient.birthdate=le1950"
count "Procedure?subject:Patient.birthdate=le1950"
count "Observation?date=2020"
count "Patient?birthdate=le1970"
# Code and a thousand patients of the population (patients with a body height: the
# transaction scenario below adds patients with one body weight only), by POST _search.
ids=$(curl -sf "$base/Patient?_has:Observation:patient:code=${loinc}8302-2&_count=1000&_elements=id" | python3 -c '
import json, sys
print(",".join("Patient/" + e["resource"]["id"] for e in json.load(sys.stdin).get("entry", [])))')
q=$(mktemp); trap 'rm -f "$q"' EXIT
echo "Observation?code=${loinc}29463-7&patient=${ids//,/%2C}&_summary=count" >"$q"
run "count: code and 1000 patients (POST _search)" --scenario search --clients 4 --post --query "@$q"
echo "Observation?code=${loinc}29463-7&patient=${ids//,/%2C}&_count=1000" >"$q"
run "page: code and 1000 patients (POST _search, _count=1000)" --scenario search --clients 4 --post --query "@$q"
# Downloads: every page, one client.
run "download: code 29463-7 (_count=1000, all pages)" --scenario download --clients 1 \
  --query "Observation?code=${loinc}29463-7&_count=1000"
run "download: code 29463-7, _elements=subject" --scenario download --clients 1 \
  --query "Observation?code=${loinc}29463-7&_count=1000&_elements=subject"
run "download: ten codes (_count=1000, all pages)" --scenario download --clients 1 \
  --query "Observation?code=$tenq&_count=1000"
run "first page of 1000, code 29463-7, 4 clients" --scenario search --clients 4 \
  --query "Observation?code=${loinc}29463-7&_count=1000"
for c in 1 16 64; do run "read, $c clients" --scenario read --clients "$c"; done
for c in 1 16 64; do run "transaction (Patient + Observation), $c clients" --scenario tx2 --clients "$c"; done
run "Patient/_history, 4 clients" --scenario history --clients 4
rss
