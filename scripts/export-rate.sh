#!/usr/bin/env bash
# The `$export` rate of a running server: stores N Observations (transactions of 1,000; ids
# export-rate-*), kicks off `$export?_type=Observation`, waits for the manifest and downloads
# every file with curl three times (plain) and twice (gzip), printing resources/s.
# The count covers every Observation on the server, so start from an empty one.
#
#   scripts/export-rate.sh [BASE] [N]      # default http://localhost:8080/fhir 100000
set -euo pipefail
BASE=${1:-http://localhost:8080/fhir}
N=${2:-100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$N" <<'EOF'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
for c in range((n + 999) // 1000):
    entries = []
    for i in range(c * 1000, min((c + 1) * 1000, n)):
        oid = f"export-rate-{i:08d}"
        entries.append({"resource": {
            "resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "effectiveDateTime": "2024-01-01T10:00:00Z",
            "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
            "request": {"method": "PUT", "url": f"Observation/{oid}"}})
    with open(f"{d}/b{c:05d}.json", "w") as f:
        json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}, f)
EOF
start=$(date +%s.%N)
for f in "$dir"/b*.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/fhir+json' \
    --data-binary @"$f" "$BASE")
  [ "$code" = 200 ] || { echo "upload of $f: HTTP $code" >&2; exit 1; }
done
echo "stored $N Observations in $(echo "$(date +%s.%N) - $start" | bc) s"

status=$(curl -s -D - -o /dev/null -H 'Prefer: respond-async' "$BASE/\$export?_type=Observation" |
  tr -d '\r' | awk 'tolower($1) == "content-location:" {print $2}')
[ -n "$status" ] || { echo "the kick-off was not accepted" >&2; exit 1; }
until [ "$(curl -s -o "$dir/manifest.json" -w '%{http_code}' "$status")" = 200 ]; do sleep 0.1; done
mapfile -t urls < <(python3 -c 'import json,sys; [print(o["url"]) for o in json.load(open(sys.argv[1]))["output"]]' "$dir/manifest.json")
total=$(python3 -c 'import json,sys; print(sum(o["count"] for o in json.load(open(sys.argv[1]))["output"]))' "$dir/manifest.json")

rate() { # label, curl options...
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  for u in "${urls[@]}"; do curl -sf "$@" -o /dev/null "$u"; done
  t1=$(date +%s.%N)
  echo "$label: $total resources in $(echo "$t1 - $t0" | bc) s = $(echo "$total / ($t1 - $t0)" | bc) resources/s"
}
for r in 1 2 3; do rate "plain round $r"; done
for r in 1 2; do rate "gzip round $r" -H 'Accept-Encoding: gzip'; done
curl -s -o /dev/null -X DELETE "$status"
