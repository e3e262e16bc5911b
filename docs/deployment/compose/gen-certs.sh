#!/usr/bin/env bash
# Generates the demo TLS material of the Docker Compose example into ./certs:
#
#   certs/ca/      ca.pem, ca.key           the demo certificate authority (ca.key is mounted nowhere)
#   certs/kafka/   kafka.keystore.jks       broker key and certificate (CN=kafka, SAN kafka, localhost)
#                  kafka.truststore.jks     the CA; the broker accepts only clients it signed
#                  kafka.credentials        password of both stores and of the key, one line
#                  admin.keystore.p12       client certificate of the topic creator and healthcheck
#                  admin-client.properties  Kafka CLI client settings using the two stores above
#   certs/flint/   kafka.truststore.jks     the CA (JKS)             -> DB_KAFKA_SSL_TRUSTSTORE_LOCATION
#                  blaze.keystore.jks       client key, certificate (JKS) -> DB_KAFKA_SSL_KEYSTORE_LOCATION
#                  flint.env                the DB_KAFKA_SSL_*_PASSWORD variables (compose env_file)
#   The Flint stores are made as a Blaze deployment makes them (docs/deployment/distributed.md).
#
# Needs openssl (1.1.1 or 3.x) and keytool (Java 11 or newer).
#
#   ./gen-certs.sh            refuses to touch an existing certs directory
#   ./gen-certs.sh --force    deletes it and generates everything anew
#
# Environment: CERTS_DIR (default: certs beside this script), CERT_DAYS (default 825),
# CERT_PASSWORD (store password; default: random).
#
# The files are world-readable because the containers read them as their own non-root users,
# whose ids need not match yours. This is demo material: for production use certificates from
# your own CA and protect the keys.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${CERTS_DIR:-$here/certs}"
days="${CERT_DAYS:-825}"
force=false

case "${1:-}" in
  --force) force=true ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | cut -c3-; exit 0 ;;
  *) echo "gen-certs: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

for tool in openssl keytool; do
  command -v "$tool" >/dev/null || { echo "gen-certs: $tool not found" >&2; exit 1; }
done

if [ -e "$out" ]; then
  if $force; then
    rm -rf "$out"
  else
    echo "gen-certs: $out already exists; use --force to replace it (running containers keep the old files)" >&2
    exit 1
  fi
fi

password="${CERT_PASSWORD:-$(openssl rand -hex 16)}"
if [ "${#password}" -lt 6 ]; then
  echo "gen-certs: CERT_PASSWORD must have at least 6 characters (keytool's minimum)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Runs a command quietly; shows its output only when it fails.
quiet() {
  if ! "$@" >"$work/last.log" 2>&1; then
    echo "gen-certs: failed: $*" >&2
    cat "$work/last.log" >&2
    exit 1
  fi
}

mkdir -p "$out/ca" "$out/kafka" "$out/flint"
printf '*\n' >"$out/.gitignore"

# --- the certificate authority -------------------------------------------------------------
cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = ca_ext
prompt = no
[dn]
O = Flint demo
CN = Flint demo CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$out/ca/ca.key"
quiet openssl req -x509 -new -config "$work/ca.cnf" -key "$out/ca/ca.key" -sha256 \
  -days "$days" -out "$out/ca/ca.pem"

# issue NAME CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]: writes $work/NAME.key and $work/NAME.pem
issue() {
  local name=$1 cn=$2 eku=$3 san=${4:-}
  {
    printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nO = Flint demo\nCN = %s\n' "$cn"
    printf '[leaf]\nbasicConstraints = critical, CA:FALSE\n'
    printf 'keyUsage = critical, digitalSignature, keyEncipherment\n'
    printf 'extendedKeyUsage = %s\n' "$eku"
    printf 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n'
    if [ -n "$san" ]; then printf 'subjectAltName = %s\n' "$san"; fi
  } >"$work/$name.cnf"
  quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$name.key"
  quiet openssl req -new -config "$work/$name.cnf" -key "$work/$name.key" -out "$work/$name.csr"
  quiet openssl x509 -req -in "$work/$name.csr" -CA "$out/ca/ca.pem" -CAkey "$out/ca/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$work/$name.cnf" -extensions leaf -out "$work/$name.pem"
  quiet openssl verify -CAfile "$out/ca/ca.pem" "$work/$name.pem"
}

# p12 NAME FILE: PKCS#12 store with NAME's key, certificate and the CA certificate
p12() {
  quiet openssl pkcs12 -export -in "$work/$1.pem" -inkey "$work/$1.key" \
    -certfile "$out/ca/ca.pem" -name "$1" -out "$2" -passout "pass:$password"
}

# --- the broker ------------------------------------------------------------------------------
# The broker certificate also carries clientAuth: the broker uses it as a client when it talks
# to its own SSL listener (inter-broker traffic).
issue kafka kafka "serverAuth, clientAuth" "DNS:kafka, DNS:localhost"
p12 kafka "$work/kafka.p12"
quiet keytool -importkeystore -noprompt \
  -srckeystore "$work/kafka.p12" -srcstoretype PKCS12 -srcstorepass "$password" \
  -destkeystore "$out/kafka/kafka.keystore.jks" -deststoretype JKS \
  -deststorepass "$password" -destkeypass "$password"
quiet keytool -importcert -noprompt -alias flint-demo-ca -file "$out/ca/ca.pem" \
  -keystore "$out/kafka/kafka.truststore.jks" -storetype JKS -storepass "$password"
printf '%s' "$password" >"$out/kafka/kafka.credentials"

# --- the Kafka CLI client (topic creator, broker healthcheck) --------------------------------
issue admin kafka-admin "clientAuth"
p12 admin "$out/kafka/admin.keystore.p12"
cat >"$out/kafka/admin-client.properties" <<EOF
security.protocol=SSL
ssl.truststore.type=JKS
ssl.truststore.location=/etc/kafka/secrets/kafka.truststore.jks
ssl.truststore.password=$password
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/kafka/secrets/admin.keystore.p12
ssl.keystore.password=$password
ssl.key.password=$password
EOF

# --- Flint (all nodes share this client certificate) ------------------------------------------
# Java key stores, made with keytool as for Blaze: a trust store with the CA, and a key store
# whose key pair keytool generates and whose certificate the CA signs.
ts="$out/flint/kafka.truststore.jks" ks="$out/flint/blaze.keystore.jks"
quiet keytool -importcert -noprompt -alias kafka-ca -file "$out/ca/ca.pem" -storetype JKS \
  -keystore "$ts" -storepass "$password"
quiet keytool -genkeypair -alias flint -dname "CN=flint, O=Flint demo" -keyalg RSA -keysize 2048 \
  -validity "$days" -storetype JKS -keystore "$ks" -storepass "$password" -keypass "$password"
quiet keytool -certreq -alias flint -file "$work/flint.csr" -keystore "$ks" \
  -storepass "$password" -keypass "$password"
printf '[leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n' >"$work/flint.cnf"
quiet openssl x509 -req -in "$work/flint.csr" -CA "$out/ca/ca.pem" -CAkey "$out/ca/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$work/flint.cnf" -extensions leaf -out "$work/flint.pem"
quiet keytool -importcert -noprompt -alias kafka-ca -file "$out/ca/ca.pem" -keystore "$ks" \
  -storepass "$password"
quiet keytool -importcert -noprompt -alias flint -file "$work/flint.pem" -keystore "$ks" \
  -storepass "$password" -keypass "$password"
{
  echo "DB_KAFKA_SSL_TRUSTSTORE_PASSWORD=$password"
  echo "DB_KAFKA_SSL_KEYSTORE_PASSWORD=$password"
  echo "DB_KAFKA_SSL_KEY_PASSWORD=$password"
} >"$out/flint/flint.env"

# --- permissions ---------------------------------------------------------------------------
chmod 0755 "$out" "$out/kafka" "$out/flint"
chmod 0644 "$out"/kafka/* "$out"/flint/* "$out/.gitignore"
chmod 0600 "$out/flint/flint.env"  # read by compose on the host, mounted nowhere
chmod 0700 "$out/ca"
chmod 0600 "$out/ca/ca.key"
chmod 0644 "$out/ca/ca.pem"

echo "gen-certs: wrote $out (valid for $days days)"
echo "  CA:     $(openssl x509 -in "$out/ca/ca.pem" -noout -subject)"
echo "  broker: $(openssl x509 -in "$work/kafka.pem" -noout -subject), SAN kafka, localhost"
echo "  Flint:  $(openssl x509 -in "$work/flint.pem" -noout -subject)"
