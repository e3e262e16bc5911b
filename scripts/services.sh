#!/usr/bin/env bash
# Real Apache Kafka (KRaft, one combined broker/controller) and Apache Cassandra (one node) on
# loopback for the distributed storage variant's tests and benchmarks. Everything comes from
# Maven Central (and cqlsh from PyPI) and is cached under .cache/services (ignored by git), or
# under $FLINT_SERVICES_CACHE when set.
#
#   scripts/services.sh fetch                 download Kafka, Cassandra and cqlsh (idempotent)
#   scripts/services.sh kafka start|stop      start/stop the broker on 127.0.0.1:${KAFKA_PORT:-19092}
#   scripts/services.sh cassandra start|stop  start/stop a node on 127.0.0.1:${CASSANDRA_PORT:-19042}
#   scripts/services.sh topic NAME            create the transaction-log topic (1 partition,
#                                             LogAppendTime, unlimited retention)
#   scripts/services.sh keyspace NAME         create the keyspace with the resources and clauses tables
#   scripts/services.sh stop                  stop both
#
# Data lives in ${SERVICES_DATA:-.cache/services/data}; `stop` keeps it, `clean` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${FLINT_SERVICES_CACHE:-$PWD/.cache/services}"
data="${SERVICES_DATA:-$root/data}"
kafka_version=4.1.1
cassandra_version=5.0.6
kafka_port="${KAFKA_PORT:-19092}"
kafka_controller_port="${KAFKA_CONTROLLER_PORT:-19093}"
cassandra_port="${CASSANDRA_PORT:-19042}"
cassandra_storage_port="${CASSANDRA_STORAGE_PORT:-17000}"
mkdir -p "$root" "$data"

log() { echo "services: $*" >&2; }

fetch_maven() { # name, groupId:artifactId:version ...
  local name=$1; shift
  local dir="$root/$name"
  [ -f "$dir/.complete" ] && return
  mkdir -p "$dir"
  {
    echo '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
    echo "<groupId>flint</groupId><artifactId>$name-runtime</artifactId><version>1</version><packaging>pom</packaging><dependencies>"
    for gav in "$@"; do
      IFS=: read -r g a v <<<"$gav"
      echo "<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
    done
    echo '</dependencies></project>'
  } >"$dir/pom.xml"
  log "downloading $name from Maven Central"
  (cd "$dir" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime)
  touch "$dir/.complete"
}

fetch() {
  command -v java >/dev/null || { log "java not found"; exit 1; }
  command -v mvn >/dev/null || { log "mvn not found"; exit 1; }
  fetch_maven kafka "org.apache.kafka:kafka_2.13:$kafka_version" "org.apache.kafka:kafka-tools:$kafka_version"
  fetch_maven cassandra "org.apache.cassandra:cassandra-all:$cassandra_version"
  if [ ! -x "$root/venv/bin/cqlsh" ]; then
    log "installing cqlsh from PyPI"
    python3 -m venv "$root/venv"
    "$root/venv/bin/pip" install -q cqlsh
  fi
}

wait_port() { # port, seconds, what
  for _ in $(seq "$(($2 * 10))"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "$3 did not open port $1 in $2 s"; return 1
}

kafka_start() {
  fetch
  local dir="$data/kafka"
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
auto.create.topics.enable=false
message.max.bytes=10485760
EOF
  local cp="$root/kafka/lib/*"
  if [ ! -f "$dir/logs/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >/dev/null 2>&1
  fi
  nohup java -Xms256m -Xmx512m -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/pid"
  wait_port "$kafka_port" 60 Kafka
  log "Kafka $kafka_version listening on 127.0.0.1:$kafka_port"
}

topic() {
  local name=$1
  java -cp "$root/kafka/lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$kafka_port" \
    --create --if-not-exists --topic "$name" --partitions 1 --replication-factor 1 \
    --config message.timestamp.type=LogAppendTime --config retention.ms=-1 \
    --config max.message.bytes=10485760 2>&1 | grep -v SLF4J >&2 || true
}

jvm17_opts=(
  -Djdk.attach.allowAttachSelf=true -Dcassandra-foreground=yes
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
  --add-exports java.base/sun.nio.ch=ALL-UNNAMED --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.math=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED
)

cassandra_start() {
  fetch
  local dir="$data/cassandra"
  mkdir -p "$dir"
  cat >"$dir/cassandra.yaml" <<EOF
cluster_name: flint
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$cassandra_storage_port"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $cassandra_storage_port
native_transport_port: $cassandra_port
start_native_transport: true
endpoint_snitch: SimpleSnitch
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
EOF
  nohup java -Xms256m -Xmx768m "${jvm17_opts[@]}" -Dcassandra.config="file://$dir/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" -cp "$root/cassandra/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/cassandra.log" 2>&1 &
  echo $! >"$dir/pid"
  wait_port "$cassandra_port" 120 Cassandra
  log "Cassandra $cassandra_version listening on 127.0.0.1:$cassandra_port"
}

cql() {
  # The default superuser is created a few seconds after start-up: retry until it exists.
  for _ in $(seq 60); do
    if "$root/venv/bin/cqlsh" 127.0.0.1 "$cassandra_port" -u cassandra -p cassandra -e "$1" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  log "CQL failed: $1"; return 1
}

keyspace() {
  local ks=$1 rf="${2:-1}"
  cql "CREATE KEYSPACE IF NOT EXISTS $ks WITH REPLICATION = {'class': 'SimpleStrategy', 'replication_factor': $rf};
       CREATE TABLE IF NOT EXISTS $ks.resources (hash text PRIMARY KEY, content blob);
       CREATE TABLE IF NOT EXISTS $ks.clauses (\"token\" text PRIMARY KEY, content blob);"
  log "keyspace $ks ready"
}

stop_one() {
  local pidfile="$data/$1/pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  kafka) case "${2:-}" in start) kafka_start ;; stop) stop_one kafka ;; *) exit 2 ;; esac ;;
  cassandra) case "${2:-}" in start) cassandra_start ;; stop) stop_one cassandra ;; *) exit 2 ;; esac ;;
  topic) topic "${2:?topic name}" ;;
  keyspace) keyspace "${2:?keyspace name}" "${3:-1}" ;;
  stop) stop_one kafka; stop_one cassandra ;;
  clean) stop_one kafka; stop_one cassandra; rm -rf "$data" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
