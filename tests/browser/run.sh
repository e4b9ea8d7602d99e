#!/usr/bin/env bash
# Headless Chromium walks against a fresh `idp-server demo` (its own SQLite folder and
# port): the shared credentials (registration.mjs), then SPID across the three services
# and Istanze OnLine's abilitazione (spid.mjs). Screenshots in target/browser/. Needs
# Debian's chromium and node; `.ci/run` installs chromium. Builds `idp-server` and the
# services' `rp` binary first (the demo starts the services only when `rp` sits next
# to `idp-server`).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug/idp-server"
rp="$target/debug/rp"
# A no-op when both are up to date; a stale binary would walk old code. Every binary of
# the workspace, as .ci/spid-sp-test and tests/src/process.rs build them: the same set
# of packages compiles once.
(cd "$root" && cargo build --workspace --bins --locked)
[ -x "$bin" ] && [ -x "$rp" ] || { echo "missing $bin or $rp" >&2; exit 1; }
data=$(mktemp -d)
port=${IDP_BROWSER_PORT:-18765}
"$bin" demo --port "$port" --data-dir "$data" >"$data/demo.log" 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true; rm -rf "$data"' EXIT
wait_for() {
  for _ in $(seq 1 120); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "not up: $1" >&2; cat "$data/demo.log" >&2; return 1
}
wait_for "http://localhost:$port/healthz"
# The three services (IdP port +1, +2, +3) and the SPID test IdP (+10).
for offset in 1 2 3; do wait_for "http://localhost:$((port + offset))/"; done
wait_for "http://localhost:$((port + 10))/metadata"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
mkdir -p "$root/target/browser"
export IDP_URL="http://localhost:$port" SCREENSHOT_DIR="$root/target/browser"
node registration.mjs
node spid.mjs
