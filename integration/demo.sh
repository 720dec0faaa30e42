#!/usr/bin/env bash
# THE demo (README, first command): on a real containerd and a real registry, started
# here on loopback with temp dirs, pullwarden
#   - allows a signed, clean image,
#   - denies an unsigned image (the kubelet-visible SignatureValidationFailed message),
#   - denies a signed image that carries a secret (PERMISSION_DENIED, removed again),
#   - allows and records an unsigned image under an audit-mode policy,
# then shows `pullwarden verdicts` and `pullwarden explain`. Node A publishes each scan
# as a signed scan attestation in the registry; then a second node (a second containerd
# and pullwarden trusting node A's fleet key) allows demo/app from that attestation
# without reading a layer, and denies demo/leaky from it. Everything it starts, it
# stops. Fixture images are built with umoci and pushed with skopeo; signatures come
# from `pullwarden sign` (cosign's formats; cosign is not packaged for Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash integration/install-deps.sh
# PULLWARDEN_PROFILE=debug reuses the test build (development shortcut).
profile=${PULLWARDEN_PROFILE:-release}
echo "==> building pullwarden ($profile)"
if [ "$profile" = release ]; then
  cargo build --release --locked --quiet
  pw="$root/target/release/pullwarden"
else
  cargo build --locked --quiet
  pw="$root/target/debug/pullwarden"
fi

dir=$(mktemp -d /tmp/pullwarden-demo.XXXXXX)
daemon_pid=
daemon_b_pid=
cleanup() {
  status=$?
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$daemon_b_pid" ] && kill "$daemon_b_pid" 2>/dev/null && wait "$daemon_b_pid" 2>/dev/null
  bash integration/services.sh stop "$dir/services" || true
  if [ $status -ne 0 ] && [ -f "$dir/daemon.log" ]; then
    echo "--- tail of the daemon log"; tail -n 30 "$dir/daemon.log"
    if [ -f "$dir/b/daemon.log" ]; then
      echo "--- tail of node B's daemon log"; tail -n 30 "$dir/b/daemon.log"
    fi
  fi
  rm -rf "$dir"
  exit $status
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
expect_fail() { # run a command that must fail, show its output
  if "$@"; then echo "demo: expected a denial, got success: $*" >&2; exit 1; fi
}

step "starting a registry and containerd on loopback"
bash integration/services.sh start "$dir/services"
# shellcheck disable=SC1091
source "$dir/services/env"
reg=$PW_IT_REGISTRY

step "building demo images with umoci, pushing with skopeo to $reg"
build_image() { # build_image NAME SETUP-FUNCTION
  local name=$1 setup=$2 layout="$dir/oci-$1"
  umoci init --layout "$layout" >/dev/null
  umoci new --image "$layout:v1" >/dev/null
  umoci unpack --rootless --image "$layout:v1" "$dir/bundle-$name" >/dev/null
  local rootfs="$dir/bundle-$name/rootfs"
  mkdir -p "$rootfs/etc" "$rootfs/app" "$rootfs/var/lib/dpkg"
  printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n' > "$rootfs/etc/os-release"
  printf 'Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n' > "$rootfs/var/lib/dpkg/status"
  printf '#!/bin/sh\necho "hello from %s"\n' "$name" > "$rootfs/app/run.sh"
  "$setup" "$rootfs"
  umoci repack --refresh-bundle --image "$layout:v1" "$dir/bundle-$name" >/dev/null
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:v1" "docker://$reg/$name:v1"
  echo "  $reg/$name:v1"
}
clean() { :; }
with_secret() {
  # Not AWS's documented example key (those are ignored as placeholders).
  printf 'AWS_ACCESS_KEY_ID=AKIA4QWERTYUIOPASDFG\nAWS_SECRET_ACCESS_KEY=t4Jp9sVbQm2Xc8LrZ1nWk5YhDg7FuE3aR0oTiS6q\n' > "$1/app/.env"
}
build_image demo/app clean
build_image demo/unsigned clean
build_image demo/leaky with_secret
build_image audit/unsigned clean

step "signing demo/app and demo/leaky with a fresh key (pullwarden keygen/sign)"
"$pw" keygen --output "$dir/release"
# Node A's fleet key: it signs node A's scan attestations; node B trusts its public half.
"$pw" keygen --output "$dir/fleet-a"
cat > "$dir/config.toml" <<TOML
[server]
listen = "$dir/cri.sock"
upstream = "$PW_IT_CONTAINERD_SOCK"
admin = "$dir/admin.sock"
metrics = "127.0.0.1:0"
state_dir = "$dir/state"

[registry]
plain_http = ["$reg"]

[[policy]]
name = "audit-only"
images = ["$reg/audit/**"]
mode = "audit"
[policy.signatures]
keys = ["$dir/release.pub"]

[[policy]]
name = "demo"
images = ["$reg/demo/**"]
mode = "enforce"
on_error = "deny"
[policy.signatures]
keys = ["$dir/release.pub"]
[policy.scan]
secrets = "deny"
max_severity = "high"
TOML
# The policies every node shares; node A adds its [fleet] section.
cp "$dir/config.toml" "$dir/policies.toml"
cat >> "$dir/config.toml" <<TOML

[fleet]
publish = true
key = "$dir/fleet-a.key"
TOML
"$pw" sign --key "$dir/release.key" --config "$dir/config.toml" "$reg/demo/app:v1"
"$pw" sign --key "$dir/release.key" --config "$dir/config.toml" "$reg/demo/leaky:v1"

step "checking the policy (pullwarden policy check)"
"$pw" policy check --config "$dir/config.toml" 2>/dev/null | grep -E '^(name|images|mode|keys|secrets|max_severity) ' 

step "starting pullwarden in front of containerd"
"$pw" serve --config "$dir/config.toml" 2> "$dir/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$dir/cri.sock" ] && break; sleep 0.1; done
[ -S "$dir/cri.sock" ] || { echo "pullwarden did not start" >&2; exit 1; }
cri() { "$pw" cri "$1" --endpoint "$dir/cri.sock" "${@:2}"; }

step "1. signed, clean image: allowed"
cri pull "$reg/demo/app:v1"

step "2. unsigned image: denied before any layer is downloaded"
expect_fail cri pull "$reg/demo/unsigned:v1"

step "3. signed image with a planted secret: denied by the scan and removed again"
expect_fail cri pull "$reg/demo/leaky:v1"
echo "  containerd (asked directly): $("$pw" cri status --endpoint "$PW_IT_CONTAINERD_SOCK" "$reg/demo/leaky:v1" || true)"

step "4. unsigned image under an audit-mode policy: allowed, the would-be deny recorded"
cri pull "$reg/audit/unsigned:v1"

step "pullwarden verdicts"
"$pw" verdicts --config "$dir/config.toml"

step "pullwarden explain $reg/demo/leaky:v1"
"$pw" explain --config "$dir/config.toml" "$reg/demo/leaky:v1"

step "pullwarden explain $reg/demo/unsigned:v1 --json (excerpt)"
# Written out first: `head` closing the pipe early would fail the pipeline.
"$pw" explain --config "$dir/config.toml" --json "$reg/demo/unsigned:v1" > "$dir/unsigned.json"
head -c 1200 "$dir/unsigned.json"; echo

step "node B: a second containerd and a second pullwarden, trusting node A's fleet key"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
b_metrics=127.0.0.1:$(free_port)
mkdir -p "$dir/b"
sed -e "s|^listen = .*|listen = \"$dir/b/cri.sock\"|" \
    -e "s|^upstream = .*|upstream = \"$PW_IT_CONTAINERD2_SOCK\"|" \
    -e "s|^admin = .*|admin = \"$dir/b/admin.sock\"|" \
    -e "s|^metrics = .*|metrics = \"$b_metrics\"|" \
    -e "s|^state_dir = .*|state_dir = \"$dir/b/state\"|" \
    "$dir/policies.toml" > "$dir/b/config.toml"
cat >> "$dir/b/config.toml" <<TOML

[fleet]
trusted = ["$dir/fleet-a.pub"]
max_age = "168h"
TOML
echo "  node A: containerd $PW_IT_CONTAINERD_SOCK, [fleet] publish = true, key = fleet-a.key"
echo "  node B: containerd $PW_IT_CONTAINERD2_SOCK, [fleet] trusted = [fleet-a.pub], metrics on $b_metrics"
# Node A publishes in the background after each scan: wait for demo/app's attestation
# (the referrers fallback tag sha256-<hex>: this registry has no referrers API).
app_digest=$("$pw" explain --config "$dir/config.toml" --json "$reg/demo/app:v1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
tag_url="http://$reg/v2/demo/app/manifests/sha256-${app_digest#sha256:}"
published() { # the index is served only to a client that accepts its media type
  python3 -c "import urllib.request as u; u.urlopen(u.Request('$tag_url', headers={'Accept': 'application/vnd.oci.image.index.v1+json'}))" 2>/dev/null
}
for _ in $(seq 100); do published && break; sleep 0.1; done
published || { echo "demo: node A did not publish its scan of demo/app" >&2; exit 1; }
echo "  node A's scan attestation of demo/app@$app_digest is in the registry (tag sha256-${app_digest#sha256:})"
"$pw" serve --config "$dir/b/config.toml" 2> "$dir/b/daemon.log" &
daemon_b_pid=$!
for _ in $(seq 100); do [ -S "$dir/b/cri.sock" ] && break; sleep 0.1; done
[ -S "$dir/b/cri.sock" ] || { echo "node B's pullwarden did not start" >&2; exit 1; }
cri_b() { "$pw" cri "$1" --endpoint "$dir/b/cri.sock" "${@:2}"; }
metric_b() { # metric_b SERIES: its value on node B's metrics endpoint
  python3 -c '
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
print(next((l.rsplit(" ", 1)[1] for l in text.splitlines() if l.startswith(sys.argv[2] + " ")), "absent"))
' "http://$b_metrics/metrics" "$1"
}

step "5. node B pulls demo/app:v1: allowed from node A's scan attestation, no layer read"
cri_b pull "$reg/demo/app:v1"
"$pw" explain --config "$dir/b/config.toml" "$reg/demo/app:v1" | sed -n '1,/^scan_source/p'
scan_kind=$("$pw" explain --config "$dir/b/config.toml" --json "$reg/demo/app:v1" \
  | python3 -c 'import json,sys; print((json.load(sys.stdin).get("scan_source") or {}).get("kind"))')
bytes_read=$(metric_b pullwarden_scanned_bytes_total)
echo "  node B metrics:"
for m in pullwarden_scanned_bytes_total \
         'pullwarden_scans_total{source="attested"}' 'pullwarden_scans_total{source="local"}' \
         'pullwarden_registry_requests_total{client="signatures"}' \
         'pullwarden_registry_requests_total{client="fleet"}'; do
  echo "    $m $(metric_b "$m")"
done
[ "$scan_kind" = attested ] && [ "$bytes_read" = 0 ] \
  || { echo "demo: node B did not use node A's attestation (scan_source $scan_kind, $bytes_read layer bytes read)" >&2; exit 1; }

step "6. node B pulls demo/leaky:v1: denied from node A's attestation (where the secret is, never its text)"
expect_fail cri_b pull "$reg/demo/leaky:v1"
"$pw" explain --config "$dir/b/config.toml" "$reg/demo/leaky:v1" | grep -E -A2 '^(scan_source|SECRETS)'
echo "  node B layer bytes read in all: $(metric_b pullwarden_scanned_bytes_total)"

step "demo finished: 1 allowed, 2 denied, 1 audited; node B: 1 allowed, 1 denied from node A's attestations, 0 layer bytes read"
