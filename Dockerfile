# syntax=docker/dockerfile:1
#
# The flint server image.
#
#   docker build -t flint .
#   docker run -p 8080:8080 -v flint-data:/app/data flint
#
# The image runs the standalone storage variant by default (data under /app/data); set
# STORAGE=distributed and the DB_KAFKA_* / DB_CASSANDRA_* variables for the distributed one
# (example: docs/deployment/compose). `docker run --rm flint --help` lists every variable.

# --- build -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# clang/libclang: bindgen for RocksDB; cmake, pkg-config, libssl-dev: librdkafka with SSL;
# libcurl4-openssl-dev: librdkafka's optional HTTP features.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      clang libclang-dev cmake pkg-config libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The release profile keeps line tables (debug = 1) for useful backtraces; strip the rest of
# the debug information, which would otherwise make the binary several hundred MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p flint-server \
 && install -D -m 0755 target/release/flint /out/flint \
 && strip --strip-debug /out/flint

# --- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim

# libssl3: librdkafka's TLS; zlib1g and libstdc++6 are linked too (already in the base image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g libstdc++6 \
 && rm -rf /var/lib/apt/lists/*

# Non-root user 1001, as in Blaze's image; data under /app/data, owned by it, so that a named
# volume mounted there starts out writable.
RUN groupadd --system --gid 1001 flint \
 && useradd --system --uid 1001 --gid flint --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin flint \
 && mkdir -p /app/data \
 && chown -R flint:flint /app

COPY --from=builder /out/flint /usr/local/bin/flint

WORKDIR /app
USER 1001:1001

ENV STORAGE=standalone \
    INDEX_DB_DIR=/app/data/index \
    TRANSACTION_DB_DIR=/app/data/transaction \
    RESOURCE_DB_DIR=/app/data/resource

# 8080: FHIR API (CONTEXT_PATH, default /fhir) and /health; 8081: Prometheus /metrics.
EXPOSE 8080 8081

# No curl or wget in this image: one HTTP/1.1 request over bash's /dev/tcp.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SERVER_PORT:-8080} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# flint stops gracefully on SIGTERM (finishes in-flight requests).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/flint"]
