#!/usr/bin/env bash
# THE test command (README, .ci/run): installs what is missing, starts a real registry
# and a real containerd on loopback with temp dirs, runs every test (unit, integration,
# doc), then stops what it started. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash integration/install-deps.sh

# The discipline, enforced (issue 12): formatting, every clippy warning (the `[lints]`
# table in Cargo.toml), and what may enter the build (deny.toml; advisories need the
# RustSec database from the network, so they are not checked here).
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
deny_log=$(mktemp)
if ! cargo deny --locked --offline check licenses bans sources >"$deny_log" 2>&1; then
  cat "$deny_log"
  exit 1
fi
tail -n 1 "$deny_log"
rm -f "$deny_log"

dir=$(mktemp -d /tmp/pullwarden-it.XXXXXX)
cleanup() {
  status=$?
  bash integration/services.sh stop "$dir" || true
  if [ $status -ne 0 ]; then
    for log in "$dir"/registry/log "$dir"/containerd/log; do
      [ -f "$log" ] && { echo "--- tail of $log"; tail -n 20 "$log"; }
    done
  fi
  rm -rf "$dir"
  exit $status
}
trap cleanup EXIT
bash integration/services.sh start "$dir"
# shellcheck disable=SC1091
source "$dir/env"

# Keep cargo's own output, then close with one total line over every test binary
# (the last binary cargo runs is the doc tests, which has none of its own).
set +e
cargo test --locked "$@" 2>&1 | tee "$dir/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$dir/cargo-test.log"
exit "$status"
