#!/usr/bin/env bash
# Starts and stops the real components the integration tests and the demo run against:
# a docker-registry (distribution) on 127.0.0.1 and a containerd with the CRI plugin,
# each on a private temp root/state/socket. Loopback only; stops only what it started.
#
#   integration/services.sh start DIR   → writes DIR/env (shell exports) and DIR/pids
#   integration/services.sh stop DIR
#
# Exports (in DIR/env):
#   PW_IT_DIR                the directory
#   PW_IT_REGISTRY           127.0.0.1:PORT of the plain-HTTP registry
#   PW_IT_CONTAINERD_SOCK    containerd's socket (CRI + containerd API)
#   PW_IT_CONTAINERD_ROOT    containerd's --root (content store under it)
#   PW_IT_CONTAINERD2_SOCK   a second containerd ("node B"), same config
#   PW_IT_CONTAINERD2_ROOT   its --root
set -euo pipefail

cmd=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "services: $what did not come up in ${secs}s" >&2
  return 1
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  : > "$dir/pids"

  # --- registry
  local rport; rport=$(free_port)
  mkdir -p "$dir/registry/storage"
  cat > "$dir/registry/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$rport
YML
  docker-registry serve "$dir/registry/config.yml" > "$dir/registry/log" 2>&1 &
  echo "$!" >> "$dir/pids"
  wait_for "docker-registry on 127.0.0.1:$rport" 20 \
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$rport/v2/')"

  # --- containerd (CRI plugin; hosts.toml lets it pull over plain HTTP from the registry)
  local c="$dir/containerd"
  mkdir -p "$c/root" "$c/state" "$c/certs.d/127.0.0.1:$rport"
  cat > "$c/certs.d/127.0.0.1:$rport/hosts.toml" <<TOML
server = "http://127.0.0.1:$rport"
[host."http://127.0.0.1:$rport"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
TOML
  containerd config default > "$c/config.toml"
  # Point the CRI registry config at our hosts dir; keep the rest default.
  python3 - "$c/config.toml" "$c/certs.d" "${PW_IT_SNAPSHOTTER:-native}" <<'PY'
import re, sys
path, certs, snap = sys.argv[1:]
text = open(path).read()
text = re.sub(r'(\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\s*\n\s*config_path = )""',
              r'\1"%s"' % certs, text, count=1)
# The native snapshotter needs no kernel overlay support (tests run in sandboxes).
text = re.sub(r'snapshotter = "overlayfs"', 'snapshotter = "%s"' % snap, text)
text = re.sub(r'(disabled_plugins = )\[.*?\]', r'\1[]', text, count=1)
open(path, "w").write(text)
PY
  grep -q "config_path = \"$c/certs.d\"" "$c/config.toml" || {
    echo "services: could not set the CRI registry config_path in $c/config.toml" >&2; return 1; }
  local sock="$c/containerd.sock"
  containerd --config "$c/config.toml" --root "$c/root" --state "$c/state" \
    --address "$sock" > "$c/log" 2>&1 &
  echo "$!" >> "$dir/pids"
  wait_for "containerd on $sock" 30 test -S "$sock"

  # --- a second containerd: another node (own root, state and socket, same config),
  # for what spans nodes (fleet scan attestations).
  local sock2="$c/containerd2.sock"
  mkdir -p "$c/root2" "$c/state2"
  containerd --config "$c/config.toml" --root "$c/root2" --state "$c/state2" \
    --address "$sock2" > "$c/log2" 2>&1 &
  echo "$!" >> "$dir/pids"
  wait_for "containerd on $sock2" 30 test -S "$sock2"

  cat > "$dir/env" <<ENV
export PW_IT_DIR=$dir
export PW_IT_REGISTRY=127.0.0.1:$rport
export PW_IT_CONTAINERD_SOCK=$sock
export PW_IT_CONTAINERD_ROOT=$c/root
export PW_IT_CONTAINERD2_SOCK=$sock2
export PW_IT_CONTAINERD2_ROOT=$c/root2
ENV
  echo "services: registry 127.0.0.1:$rport, containerd $sock (logs in $dir)" >&2
}

stop() {
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done < "$dir/pids"
  for _ in $(seq 1 50); do
    alive=0
    while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$dir/pids"
    [ $alive = 0 ] && break
    sleep 0.1
  done
  while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$dir/pids"
  rm -f "$dir/pids"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: services.sh start|stop DIR" >&2; exit 2 ;;
esac
