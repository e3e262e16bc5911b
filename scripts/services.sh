#!/usr/bin/env bash
# Real Apache Kafka (KRaft, one combined broker/controller) and Apache Cassandra (one node or a small
# cluster) on loopback for the distributed storage variant's tests and benchmarks. Everything comes
# from Maven Central (and cqlsh from PyPI) and is cached under .cache/services (ignored by git), or
# under $FLINT_SERVICES_CACHE when set.
#
#   scripts/services.sh fetch                 download Kafka, Cassandra and cqlsh (idempotent)
#   scripts/services.sh certs                 make a test CA and broker/client certificates in
#                                             $data/certs (idempotent; files below)
#   scripts/services.sh kafka start|stop      start/stop the broker on 127.0.0.1:${KAFKA_PORT:-19092}; with
#                                             KAFKA_SSL_PORT set, also an SSL listener on 127.0.0.1:$KAFKA_SSL_PORT
#                                             that requires a client certificate (runs `certs` first)
#   scripts/services.sh cassandra start|stop  start/stop ${CASSANDRA_NODES:-1} node(s) on 127.0.0.1 ... 127.0.0.N, all on
#                                             port ${CASSANDRA_PORT:-19042}; start returns when every node is up
#                                             and sees the others (seed 127.0.0.1)
#   scripts/services.sh cassandra stop-node I [kill]  stop node I (SIGTERM; SIGKILL with `kill`)
#   scripts/services.sh cassandra start-node I        start node I again on its data, wait for its port
#   scripts/services.sh topic NAME            create the transaction-log topic (1 partition,
#                                             LogAppendTime, unlimited retention)
#   scripts/services.sh keyspace NAME [RF]    create the keyspace (replication factor RF, default 1, at
#                                             most N) with the resources and clauses tables
#   scripts/services.sh iptables              make sure the iptables command exists (apt-get; adds no rule)
#   scripts/services.sh stop                  stop Kafka and every Cassandra node
#   scripts/services.sh clean                 stop, then remove the data
#
# Environment: SERVICES_DATA, KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SSL_PORT, CASSANDRA_PORT (CQL),
# CASSANDRA_STORAGE_PORT (gossip), CASSANDRA_NODES (remembered by later commands on the same data).
# Data lives in $data = ${SERVICES_DATA:-.cache/services/data} (Cassandra node I in $data/cassandraI);
# `stop` keeps it, `clean` removes it. System keyspace system_auth gets replication factor N, so the
# default superuser cassandra/cassandra can log in while one node of three is down.
#
# TLS files made by `certs` (every password and PKCS#12/JKS store password: flint-secret):
#   ca.pem, ca.key                 the test CA
#   broker.pem, broker.key         broker certificate, CN=localhost, SAN IP:127.0.0.1 and DNS:localhost
#   broker.p12, truststore.p12     the broker's PKCS#12 keystore (key, certificate, CA) and truststore (CA)
#   client.pem, client.key         client certificate (CN=flint-client) and its unencrypted PKCS#8 key
#   client-enc.key                 the same key as encrypted PKCS#8 (AES-256-CBC)
#   client.p12                     client key, certificate and CA (PKCS#12: AES-256-CBC, SHA-256 MAC)
#   client.jks, truststore.jks     the client keystore and the truststore in JKS, as a Java (Blaze)
#                                  deployment has them
#   client.properties              Java client settings for the SSL listener (--command-config)
# A librdkafka client of the SSL listener: security.protocol=ssl, ssl.ca.location=ca.pem, and either
# ssl.certificate.location=client.pem with ssl.key.location=client.key (or client-enc.key plus
# ssl.key.password=flint-secret), or ssl.keystore.location=client.p12 with ssl.keystore.password=flint-secret.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${FLINT_SERVICES_CACHE:-$PWD/.cache/services}"
data="${SERVICES_DATA:-$root/data}"
kafka_version=4.1.1
cassandra_version=5.0.6
kafka_port="${KAFKA_PORT:-19092}"
kafka_controller_port="${KAFKA_CONTROLLER_PORT:-19093}"
kafka_ssl_port="${KAFKA_SSL_PORT:-}"
cassandra_port="${CASSANDRA_PORT:-19042}"
cassandra_storage_port="${CASSANDRA_STORAGE_PORT:-17000}"
tls_password=flint-secret
mkdir -p "$root" "$data"
data=$(cd "$data" && pwd)

log() { echo "services: $*" >&2; }

# The node count: CASSANDRA_NODES, else that of the cluster last started on this data, else 1.
cassandra_nodes="${CASSANDRA_NODES:-$(cat "$data/cassandra-nodes" 2>/dev/null || echo 1)}"
if ! [[ "$cassandra_nodes" =~ ^[1-9][0-9]*$ ]] || [ "$cassandra_nodes" -gt 254 ]; then
  log "CASSANDRA_NODES must be a number from 1 to 254, not '$cassandra_nodes'"; exit 2
fi

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

running() { # pid: alive and not a zombie (a process that died while this script waits is one)
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$state" != Z* ]]
}

port_open() { # host, port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() { # port, seconds, what[, host[, pid file of the process that should open it]]
  local host="${4:-127.0.0.1}" pidfile="${5:-}"
  for _ in $(seq "$(($2 * 10))"); do
    port_open "$host" "$1" && return 0
    if [ -n "$pidfile" ] && ! running "$(cat "$pidfile")"; then
      log "$3 exited before opening $host:$1; the end of its log:"
      tail -n 20 "$(dirname "$pidfile")"/*.log >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "$3 did not open $host:$1 in $2 s"; return 1
}

# The process in this pid file, if it is still the one started here (its command line names its
# directory), so that a stale pid file never leads to signalling someone else's process.
live_pid() { # pid file
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(dirname "$1")" || return 1
  echo "$pid"
}

# Whether the process of this pid file is done with its graceful part: exited, or a Cassandra node
# that has announced its shutdown to the others. Cassandra then waits up to a minute for its
# internode connections to quiesce, which nodes stopped together never do; its commit log is
# memory-mapped, so a SIGKILL from then on loses nothing either.
stopped() { # pid file, pid
  ! running "$2" ||
    grep -qs "Waiting for messaging service to quiesce" "$(dirname "$1")/cassandra.log"
}

stop_pids() { # pid file ...: SIGTERM all at once, SIGKILL whatever still runs after 10 s
  local f pid files=() pids=() i pending
  for f in "$@"; do
    if pid=$(live_pid "$f"); then files+=("$f"); pids+=("$pid"); fi
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
      pending=0
      for i in "${!pids[@]}"; do stopped "${files[$i]}" "${pids[$i]}" || pending=1; done
      [ "$pending" = 0 ] && break
      sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do
      for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    done
  fi
  rm -f "$@"
}

# --- TLS ----------------------------------------------------------------------------------------

quiet() { # command ...: run it with its output in make.log, shown only if it fails
  "$@" >>make.log 2>&1 || { cat make.log >&2; log "failed: $*"; exit 1; }
}

issue_cert() { # name, subject, extendedKeyUsage[, subjectAltName]: name.key and name.pem, signed by the CA
  quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key"
  quiet openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$3"
    if [ -n "${4:-}" ]; then echo "subjectAltName=$4"; fi
  } >"$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -sha256 -days 3650 -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}

make_certs() { # into the current directory, to end up in $1
  local pass="pass:$tls_password"
  local p12=(-keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 -passout "$pass")
  quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key
  quiet openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=Flint test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
  issue_cert broker "/CN=localhost" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  issue_cert client "/CN=flint-client" clientAuth
  quiet openssl pkcs8 -topk8 -in client.key -v2 aes-256-cbc -passout "$pass" -out client-enc.key
  quiet openssl pkcs12 -export -name flint-client -inkey client.key -in client.pem -certfile ca.pem "${p12[@]}" -out client.p12
  quiet openssl pkcs12 -export -name broker -inkey broker.key -in broker.pem -certfile ca.pem "${p12[@]}" -out broker.p12
  local store
  for store in PKCS12:truststore.p12 JKS:truststore.jks; do
    quiet keytool -importcert -noprompt -alias flint-ca -file ca.pem -storetype "${store%%:*}" \
      -keystore "${store#*:}" -storepass "$tls_password"
  done
  quiet keytool -importkeystore -noprompt -srckeystore client.p12 -srcstoretype PKCS12 -srcstorepass "$tls_password" \
    -destkeystore client.jks -deststoretype JKS -deststorepass "$tls_password" -destkeypass "$tls_password"
  cat >client.properties <<EOF
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=$1/client.p12
ssl.keystore.password=$tls_password
ssl.key.password=$tls_password
ssl.truststore.type=PKCS12
ssl.truststore.location=$1/truststore.p12
ssl.truststore.password=$tls_password
EOF
  chmod 600 ./*.key
  rm -f make.log
}

certs() {
  local dir="$data/certs" tmp
  [ -f "$dir/.complete" ] && return
  command -v openssl >/dev/null || { log "openssl not found"; exit 1; }
  command -v keytool >/dev/null || { log "keytool not found"; exit 1; }
  tmp=$(mktemp -d "$data/certs.XXXXXX")
  (cd "$tmp" && make_certs "$dir") || { rm -rf "$tmp"; exit 1; }
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "test CA and certificates in $dir"
}

# --- Kafka --------------------------------------------------------------------------------------

kafka_start() {
  fetch
  local dir="$data/kafka"
  local listeners="PLAINTEXT://127.0.0.1:$kafka_port" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" ssl=""
  mkdir -p "$dir"
  if [ -n "$kafka_ssl_port" ]; then
    certs
    listeners+=",SSL://127.0.0.1:$kafka_ssl_port"
    protocols+=",SSL:SSL"
    ssl="ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$data/certs/broker.p12
ssl.keystore.password=$tls_password
ssl.key.password=$tls_password
ssl.truststore.type=PKCS12
ssl.truststore.location=$data/certs/truststore.p12
ssl.truststore.password=$tls_password"
  fi
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=$listeners,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
auto.create.topics.enable=false
message.max.bytes=10485760
$ssl
EOF
  local cp="$root/kafka/lib/*"
  if [ ! -f "$dir/logs/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >/dev/null 2>&1
  fi
  nohup java -Xms256m -Xmx512m -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  wait_port "$kafka_port" 60 Kafka 127.0.0.1 "$dir/pid"
  if [ -n "$kafka_ssl_port" ]; then
    wait_port "$kafka_ssl_port" 30 "Kafka (SSL)" 127.0.0.1 "$dir/pid"
    log "Kafka $kafka_version listening on 127.0.0.1:$kafka_port, SSL on 127.0.0.1:$kafka_ssl_port"
  else
    log "Kafka $kafka_version listening on 127.0.0.1:$kafka_port"
  fi
}

topic() {
  local name=$1
  java -cp "$root/kafka/lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$kafka_port" \
    --create --if-not-exists --topic "$name" --partitions 1 --replication-factor 1 \
    --config message.timestamp.type=LogAppendTime --config retention.ms=-1 \
    --config max.message.bytes=10485760 2>&1 | grep -v SLF4J >&2 || true
}

# --- Cassandra ----------------------------------------------------------------------------------

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

# Start-up shortcuts for a fresh loopback cluster: no gossip settling, a shorter ring delay (also how
# long a joining node waits for the seed's first gossip answer), the default superuser after 1 s
# (the delay is also its retry interval: 0 would spin while it waits for the other nodes),
# system_auth on every node, and INFO logging (logback alone logs at DEBUG).
cassandra_opts=(
  -Dcassandra.ring_delay_ms=5000 -Dcassandra.skip_wait_for_gossip_to_settle=0
  -Dcassandra.superuser_setup_delay_ms=1000 -Dcassandra.system_auth.default_rf="$cassandra_nodes"
  -Dlogback.configurationFile="$data/cassandra-logback.xml"
)

node_check() { # node number
  if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || [ "$1" -gt 254 ]; then log "no Cassandra node '$1'"; exit 2; fi
}

cassandra_node_start() { # node number: start it (unless it runs), return at once
  local i=$1 dir="$data/cassandra$1" addr="127.0.0.$1" bootstrap=false heap=512m
  if live_pid "$dir/pid" >/dev/null; then log "Cassandra node $i already runs"; return; fi
  # A node joining a fresh, empty cluster has nothing to stream: skipping the bootstrap lets nodes
  # 2..N join together. The first node, the seed, never bootstraps anyway.
  if [ "$i" = 1 ]; then bootstrap=true; fi
  # A single node keeps the full JIT (benchmarks); in a cluster the JVMs share two cores, and C1
  # alone makes each node's start-up cost about 6 CPU seconds instead of 10.
  local jit=(-XX:TieredStopAtLevel=1)
  if [ "$cassandra_nodes" = 1 ]; then heap=768m; jit=(); fi
  mkdir -p "$dir"
  cat >"$data/cassandra-logback.xml" <<'EOF'
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
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
listen_address: $addr
rpc_address: $addr
storage_port: $cassandra_storage_port
native_transport_port: $cassandra_port
start_native_transport: true
auto_bootstrap: $bootstrap
endpoint_snitch: SimpleSnitch
concurrent_compactors: 1
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
EOF
  nohup java -Xms256m "-Xmx$heap" "${jvm17_opts[@]}" "${cassandra_opts[@]}" "${jit[@]}" \
    -Dcassandra.config="file://$dir/cassandra.yaml" -Dcassandra.storagedir="$dir" \
    -cp "$root/cassandra/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/cassandra.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

cassandra_node_wait() { # node number
  wait_port "$cassandra_port" 120 "Cassandra node $1" "127.0.0.$1" "$data/cassandra$1/pid"
}

cqlsh() { # host, cqlsh arguments ...
  local host=$1; shift
  "$root/venv/bin/cqlsh" "$host" "$cassandra_port" -u cassandra -p cassandra "$@"
}

cassandra_start() {
  fetch
  local n=$cassandra_nodes i t0=$SECONDS
  echo "$n" >"$data/cassandra-nodes"
  cassandra_node_start 1
  if [ "$n" -gt 1 ]; then
    # The others need the seed's gossip only after several seconds of booting: start them as soon
    # as the seed listens for gossip, all at once (no bootstrap; see cassandra_node_start).
    wait_port "$cassandra_storage_port" 120 "Cassandra node 1 (gossip)" 127.0.0.1 "$data/cassandra1/pid"
    for i in $(seq 2 "$n"); do cassandra_node_start "$i"; done
  fi
  for i in $(seq "$n"); do cassandra_node_wait "$i"; done
  if [ "$n" = 1 ]; then
    log "Cassandra $cassandra_version listening on 127.0.0.1:$cassandra_port"
    return
  fi
  # Every node lists the N-1 others among its peers, and the default superuser can log in on it.
  local pending
  for _ in $(seq 120); do
    pending=0
    for i in $(seq "$n"); do
      if [ "$( (cqlsh "127.0.0.$i" -e "SELECT peer FROM system.peers" 2>/dev/null || true) |
        grep -cE '^ *127\.[0-9.]+ *$')" != "$((n - 1))" ]; then
        pending=1; break
      fi
    done
    [ "$pending" = 0 ] && break
    sleep 1
  done
  if [ "$pending" = 1 ]; then log "the Cassandra nodes did not all see each other in 120 s"; return 1; fi
  # Nodes 2..N did not bootstrap: read system_auth at ALL so that read repair copies the superuser
  # (written while fewer nodes were up) to every replica.
  cql "CONSISTENCY ALL; SELECT role FROM system_auth.roles; SELECT role FROM system_auth.role_members;" >/dev/null
  log "Cassandra $cassandra_version cluster of $n nodes up on 127.0.0.1..127.0.0.$n:$cassandra_port in $((SECONDS - t0)) s"
}

cassandra_stop_node() { # node number[, kill]
  node_check "$1"
  local pidfile="$data/cassandra$1/pid" pid
  if [ "${2:-}" = kill ]; then
    if pid=$(live_pid "$pidfile"); then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
  else
    stop_pids "$pidfile"
  fi
  log "Cassandra node $1 (127.0.0.$1) stopped"
}

cassandra_start_node() { # node number
  node_check "$1"
  [ -d "$data/cassandra$1" ] || { log "Cassandra node $1 was never started on $data"; exit 1; }
  cassandra_node_start "$1"
  cassandra_node_wait "$1"
  log "Cassandra node $1 listening on 127.0.0.$1:$cassandra_port"
}

cql() { # statements: on the first node that is up
  local i
  # The default superuser is created a few seconds after start-up: retry until it exists.
  for _ in $(seq 60); do
    for i in $(seq "$cassandra_nodes"); do
      port_open "127.0.0.$i" "$cassandra_port" || continue
      if cqlsh "127.0.0.$i" -e "$1" 2>/dev/null; then return 0; fi
      break
    done
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

# --- iptables -----------------------------------------------------------------------------------

iptables_install() {
  command -v iptables >/dev/null && return
  local sudo=()
  if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
  log "installing iptables with apt-get"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
  if ! "${apt[@]}" install -y --no-install-recommends iptables >/dev/null; then
    "${apt[@]}" update >/dev/null
    "${apt[@]}" install -y --no-install-recommends iptables >/dev/null
  fi
  command -v iptables >/dev/null || { log "iptables still not found"; exit 1; }
}

cassandra_pidfiles() { # every node's (and an older layout's $data/cassandra), running or not
  local f
  for f in "$data"/cassandra*/pid; do [ -e "$f" ] && echo "$f"; done
  return 0
}

stop_all() {
  local files
  mapfile -t files < <(cassandra_pidfiles)
  stop_pids "$data/kafka/pid" "${files[@]}"
}

case "${1:-}" in
  fetch) fetch ;;
  certs) certs ;;
  kafka) case "${2:-}" in start) kafka_start ;; stop) stop_pids "$data/kafka/pid" ;; *) exit 2 ;; esac ;;
  cassandra)
    case "${2:-}" in
      start) cassandra_start ;;
      stop) mapfile -t pidfiles < <(cassandra_pidfiles); stop_pids "${pidfiles[@]}" ;;
      stop-node) cassandra_stop_node "${3:?node number}" "${4:-}" ;;
      start-node) cassandra_start_node "${3:?node number}" ;;
      *) exit 2 ;;
    esac ;;
  topic) topic "${2:?topic name}" ;;
  keyspace) keyspace "${2:?keyspace name}" "${3:-1}" ;;
  iptables) iptables_install ;;
  stop) stop_all ;;
  clean) stop_all; rm -rf "$data" ;;
  *) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2 ;;
esac
