#!/usr/bin/env bash
# Installs the independent gRPC clients the CRI tests and the cri_proxy bench drive
# (tests/cri_clients.rs): Python grpcio + h2 from PyPI and Node @grpc/grpc-js from npm,
# into target/clients/ inside the repository, never system-wide. Safe to run again:
# what is there is kept.
#
#   target/clients/python   PYTHONPATH for grpcio, grpcio-tools (protoc for Python), h2
#   target/clients/node     node_modules with @grpc/grpc-js and @grpc/proto-loader
set -euo pipefail
cd "$(dirname "$0")/.."
out=${PW_CLIENTS_DIR:-target/clients}
mkdir -p "$out"

py="$out/python"
if ! PYTHONPATH="$py" python3 -c 'import grpc, grpc_tools, h2' >/dev/null 2>&1; then
  echo "install-clients: pip install grpcio grpcio-tools h2 -> $py" >&2
  # Debian's own python3 marks itself externally managed (PEP 668); --target installs
  # nothing into it, so the marker does not apply here.
  flags=()
  if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    flags+=(--break-system-packages)
  fi
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-input "${flags[@]}" --target "$py" --upgrade 'grpcio>=1.57' grpcio-tools 'h2>=4'
fi

node="$out/node"
if [ ! -d "$node/node_modules/@grpc/grpc-js" ] || [ ! -d "$node/node_modules/@grpc/proto-loader" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-clients: npm is missing (apt-get install nodejs npm)" >&2
    exit 1
  fi
  echo "install-clients: npm install @grpc/grpc-js @grpc/proto-loader -> $node" >&2
  mkdir -p "$node"
  [ -f "$node/package.json" ] || echo '{"name":"pullwarden-test-clients","private":true}' > "$node/package.json"
  npm install --silent --no-audit --no-fund --prefix "$node" @grpc/grpc-js @grpc/proto-loader
fi
