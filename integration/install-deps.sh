#!/usr/bin/env bash
# Installs (Debian packages) everything the build, the tests and the demo need, and
# nothing that is already there. Safe to run again.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have containerd || need+=(containerd)
have docker-registry || need+=(docker-registry)
have skopeo || need+=(skopeo)
have umoci || need+=(umoci)
have protoc || need+=(protobuf-compiler)
have cmake || need+=(cmake)
have pkg-config || need+=(pkg-config)
have clang || need+=(clang)
have ld.lld || need+=(lld)
have python3 || need+=(python3)
# Debian's own interpreter: the doctor tests run it under another name (a version
# manager's shim on PATH would dispatch on that name).
[ -x /usr/bin/python3 ] || need+=(python3)
# The CRI client tests: grpcio and h2 from PyPI, @grpc/grpc-js from npm (install-clients.sh).
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
have node || need+=(nodejs)
have npm || need+=(npm)
# rpm fixtures: rpmbuild and rpm write real packages and an sqlite rpmdb; Berkeley DB's
# db5.3_load writes rpm's older hash-format Packages file.
have rpmbuild || need+=(rpm)
have db5.3_load || need+=(db5.3-util)
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have cargo; then
  echo "install-deps: cargo is missing; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# Independent gRPC clients for the CRI tests and bench (PyPI and npm, into target/clients).
bash "$(dirname "$0")/install-clients.sh"

# The lint gate of integration/test.sh: clippy and rustfmt (rustup components where the
# toolchain came from rustup) and cargo-deny (built from crates.io; pinned).
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  if have rustup; then
    rustup component add clippy rustfmt
  else
    echo "install-deps: cargo clippy and cargo fmt are missing (rustup component add clippy rustfmt)" >&2
    exit 1
  fi
fi
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.2'; then
  echo "install-deps: cargo install cargo-deny 0.20.2" >&2
  cargo install --locked --quiet cargo-deny --version 0.20.2
fi
