#!/usr/bin/env bash
# Fetches the CQL standard data Flint's CQL engine needs from Maven Central, idempotently:
# FHIRHelpers 4.0.1 (the CQL source of the helper library every FHIR measure includes) and the
# FHIR 4.0.1 model info, both inside the jar info.cqframework:quick:3.29.0.
#
#   crates/flint-model/definitions/cql/FHIRHelpers-4.0.1.cql   committed (builds need no network;
#                                      flint_model::defs::FHIR_HELPERS_4_0_1)
#   .cache/cql/fhir-modelinfo-4.0.1.xml                    not committed (tests and tools only)
#
# The jar's SHA-256 is pinned; run again after changing the version to regenerate the files.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.29.0
SHA256=3ed9ab77bd9a755ad9d2629650d6f720f4b4b54561c9a20d0794e166e9d9d7b5
JAR="${HOME}/.m2/repository/info/cqframework/quick/${VERSION}/quick-${VERSION}.jar"
if [ ! -f "$JAR" ]; then
  command -v mvn >/dev/null || { echo "fetch-cql-definitions: mvn not found" >&2; exit 1; }
  mvn -q dependency:get -Dartifact="info.cqframework:quick:${VERSION}" -Dtransitive=false
fi
echo "${SHA256}  ${JAR}" | sha256sum -c --quiet - || {
  echo "fetch-cql-definitions: ${JAR} does not have the pinned SHA-256" >&2
  exit 1
}
mkdir -p crates/flint-model/definitions/cql .cache/cql
python3 - "$JAR" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for member, out in [
        ("org/hl7/fhir/FHIRHelpers-4.0.1.cql", "crates/flint-model/definitions/cql/FHIRHelpers-4.0.1.cql"),
        ("org/hl7/fhir/fhir-modelinfo-4.0.1.xml", ".cache/cql/fhir-modelinfo-4.0.1.xml"),
    ]:
        with open(out, "wb") as f:
            f.write(z.read(member))
PY
echo "fetch-cql-definitions: FHIRHelpers-4.0.1.cql and fhir-modelinfo-4.0.1.xml from quick ${VERSION}"
