#!/usr/bin/env bash
# Installs what building Flint needs beyond a Rust toolchain, idempotently:
# libclang (bindgen for RocksDB's C API). Safe to run again; does nothing when all is there.
set -euo pipefail

need_apt=()
# libclang-cpp (C++ API, present on many machines) does not count: bindgen needs libclang.so.
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
  && ! ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
  need_apt+=(libclang-dev)
fi
if ! command -v c++ >/dev/null 2>&1; then
  need_apt+=(g++)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
