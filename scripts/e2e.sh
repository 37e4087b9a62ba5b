#!/usr/bin/env bash
# End-to-end test of the browser demo (B12) in real headless Chromium.
#
# Builds `tessera`, starts `tessera serve` on a free loopback port with a throwaway DATA_DIR
# (SQLite, managed keys), plain-http cookies (COOKIE_SECURE=false), a 2-second access token
# (so the test sees it expire and the page refresh it), no leeway and raised rate limits; runs
# e2e/demo.test.mjs with node's test runner against it; stops the server.
#
# Needs node/npm and Chromium at $CHROMIUM (default /usr/bin/chromium, Debian's `chromium`;
# .ci/run installs it when missing). playwright-core comes from e2e/package-lock.json and never
# downloads a browser. On failure the screenshots and the server log are kept and their folder
# is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "e2e: no Chromium at $CHROMIUM (apt-get install -y --no-install-recommends chromium, or set CHROMIUM)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "e2e: node is required" >&2; exit 1; }

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -f e2e/node_modules/playwright-core/package.json ] \
  || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --locked -p tessera-server --bin tessera
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tessera"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e.XXXXXX")"
mkdir -p "$WORK/data" "$WORK/artifacts"
PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
URL="http://127.0.0.1:$PORT"

SERVER_PID=""
cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "e2e: failed; server log and screenshots kept in $WORK" >&2
    tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT

# Run from the work folder so a developer's .env is not picked up; no shared stores.
(
  cd "$WORK"
  exec env -u DATABASE_URL -u REDIS_URL -u CORS_ORIGINS -u TOKEN_DELIVERY \
    BIND_ADDR="127.0.0.1:$PORT" \
    DATA_DIR="$WORK/data" \
    COOKIE_SECURE=false \
    ACCESS_TOKEN_EXPIRE_SECONDS=2 \
    TOKEN_LEEWAY_SECONDS=0 \
    RATE_LIMIT_LOGIN=1000/minute \
    RATE_LIMIT_LOGIN_ACCOUNT=1000/minute \
    RATE_LIMIT_REGISTER=1000/minute \
    RATE_LIMIT_API=10000/minute \
    LOG_FORMAT=text \
    LOG_LEVEL=info \
    "$BIN" serve
) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
  if curl -fsS "$URL/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "e2e: the server exited during startup" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$URL/healthz" >/dev/null

TESSERA_URL="$URL" CHROMIUM="$CHROMIUM" E2E_ARTIFACTS="$WORK/artifacts" \
  node --test --test-reporter=spec e2e/demo.test.mjs
