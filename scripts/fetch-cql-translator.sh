#!/usr/bin/env bash
# Installs the reference CQL-to-ELM translator (npm @cqframework/cql, the cqframework translator
# compiled to JavaScript) and the model info it needs, idempotently, for tests and tools only
# (nothing here is committed or needed by a build):
#
#   .cache/cql-translator/node_modules/@cqframework/cql   npm @cqframework/cql, pinned version
#   .cache/cql/system-modelinfo.xml                       System model info, from the Maven jar
#                                                         info.cqframework:model (SHA-256 pinned)
#   .cache/cql/fhir-modelinfo-4.0.1.xml                   FHIR 4.0.1 model info
#                                                         (scripts/fetch-cql-definitions.sh)
#
# scripts/cql-to-elm.mjs then translates CQL to ELM JSON; the flint-cql test
# tests/elm_differential.rs runs it. Needs node (20+), npm and mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
NPM_VERSION=5.3.0
MODEL_VERSION=3.29.0
MODEL_SHA256=e85048d9e746ebb0eef07d21e0edb602e43627ca0c9de1b767dc152f9bd9d2ac
DIR=.cache/cql-translator
PKG="$DIR/node_modules/@cqframework/cql/package.json"
if [ ! -f "$PKG" ] || ! grep -q "\"version\": \"${NPM_VERSION}\"" "$PKG"; then
  command -v npm >/dev/null || { echo "fetch-cql-translator: npm not found" >&2; exit 1; }
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"private": true}' >"$DIR/package.json"
  npm install --prefix "$DIR" --no-audit --no-fund --save-exact "@cqframework/cql@${NPM_VERSION}" >/dev/null
fi
mkdir -p .cache/cql
if [ ! -f .cache/cql/system-modelinfo.xml ]; then
  JAR="${HOME}/.m2/repository/info/cqframework/model/${MODEL_VERSION}/model-${MODEL_VERSION}.jar"
  if [ ! -f "$JAR" ]; then
    command -v mvn >/dev/null || { echo "fetch-cql-translator: mvn not found" >&2; exit 1; }
    mvn -q dependency:get -Dartifact="info.cqframework:model:${MODEL_VERSION}" -Dtransitive=false
  fi
  echo "${MODEL_SHA256}  ${JAR}" | sha256sum -c --quiet - || {
    echo "fetch-cql-translator: ${JAR} does not have the pinned SHA-256" >&2
    exit 1
  }
  unzip -p "$JAR" org/hl7/elm/r1/system-modelinfo.xml >.cache/cql/system-modelinfo.xml.tmp
  mv .cache/cql/system-modelinfo.xml.tmp .cache/cql/system-modelinfo.xml
fi
[ -f .cache/cql/fhir-modelinfo-4.0.1.xml ] || scripts/fetch-cql-definitions.sh
echo "fetch-cql-translator: @cqframework/cql ${NPM_VERSION} in ${DIR}, model info in .cache/cql"
