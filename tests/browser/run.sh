#!/usr/bin/env bash
# Headless Chromium walk of the shared credentials against a fresh `idp-server demo`
# (its own SQLite folder and port). Screenshots in target/browser/. Needs Debian's
# chromium and node; `.ci/run` installs chromium.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
bin="${CARGO_TARGET_DIR:-$root/target}/debug/idp-server"
[ -x "$bin" ] || (cd "$root" && cargo build -p idp-server --locked)
data=$(mktemp -d)
port=${IDP_BROWSER_PORT:-18765}
"$bin" demo --port "$port" --data-dir "$data" >"$data/demo.log" 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 60); do curl -fsS "http://localhost:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
mkdir -p "$root/target/browser"
IDP_URL="http://localhost:$port" SCREENSHOT_DIR="$root/target/browser" node registration.mjs
