#!/usr/bin/env bash
# Runs benchmarks that need the real registry and containerd (release build).
#   bash integration/bench.sh [BENCH...]     default: every bench
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/install-deps.sh
dir=$(mktemp -d /tmp/pullwarden-bench.XXXXXX)
trap 'bash integration/services.sh stop "$dir"; rm -rf "$dir"' EXIT
bash integration/services.sh start "$dir"
# shellcheck disable=SC1091
source "$dir/env"
if [ $# -eq 0 ]; then
  cargo bench --locked
else
  for b in "$@"; do cargo bench --locked --bench "$b"; done
fi
