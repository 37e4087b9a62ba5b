#!/usr/bin/env bash
# End-to-end test of the browser demo (B12) and the hosted pages (C4) in real headless Chromium.
#
# Builds `tessera`, starts a real SMTP server (aiosmtpd, writing a Maildir) and `tessera serve`
# on free loopback ports with a throwaway DATA_DIR (SQLite, managed keys), plain-http cookies
# (COOKIE_SECURE=false), a 2-second access token (so the tests see it expire and the page
# refresh it), no leeway, raised rate limits, SMTP_URL pointing at aiosmtpd, PUBLIC_URL = the
# server's own address (so mailed links open in the browser) and a product name and colour;
# runs e2e/demo.test.mjs, e2e/pages.test.mjs and e2e/passkeys.test.mjs (Chromium's virtual
# WebAuthn authenticator) with node's test runner, one after the other;
# stops both servers.
#
# aiosmtpd comes from $TESSERA_PYTHON (.ci/run exports the .venv-ci one), else ./.venv-ci.
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
PYTHON="${TESSERA_PYTHON:-$ROOT/.venv-ci/bin/python}"
if ! "$PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "e2e: no aiosmtpd in $PYTHON (set TESSERA_PYTHON to a venv with aiosmtpd, or run .ci/run)" >&2
  exit 1
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -f e2e/node_modules/playwright-core/package.json ] \
  || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --locked -p tessera-server --bin tessera
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tessera"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e.XXXXXX")"
mkdir -p "$WORK/data" "$WORK/artifacts"
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
PORT="$(free_port)"
SMTP_PORT="$(free_port)"
# `localhost`, not 127.0.0.1: a WebAuthn RP ID (the host of PUBLIC_URL) is a domain, never an IP
# address, and the browser must use the same host for passkeys to work.
URL="http://localhost:$PORT"

SERVER_PID=""
SMTP_PID=""
cleanup() {
  local status=$?
  for pid in "$SERVER_PID" "$SMTP_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "e2e: failed; server log and screenshots kept in $WORK" >&2
    tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT

# The SMTP server: every message it accepts becomes a file in the Maildir $WORK/maildir/new.
"$PYTHON" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$WORK/maildir" \
  >"$WORK/smtp.log" 2>&1 &
SMTP_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

# Run from the work folder so a developer's .env is not picked up; no shared stores.
(
  cd "$WORK"
  exec env -u DATABASE_URL -u REDIS_URL -u CORS_ORIGINS -u TOKEN_DELIVERY -u EMAIL_VERIFICATION \
    BIND_ADDR="127.0.0.1:$PORT" \
    DATA_DIR="$WORK/data" \
    COOKIE_SECURE=false \
    ACCESS_TOKEN_EXPIRE_SECONDS=2 \
    TOKEN_LEEWAY_SECONDS=0 \
    RATE_LIMIT_LOGIN=1000/minute \
    RATE_LIMIT_LOGIN_ACCOUNT=1000/minute \
    RATE_LIMIT_REGISTER=1000/minute \
    RATE_LIMIT_API=10000/minute \
    RATE_LIMIT_MAIL_ADDRESS=100/minute \
    RATE_LIMIT_MAIL_IP=1000/minute \
    PUBLIC_URL="$URL" \
    SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
    SMTP_FROM="Acme ID <no-reply@example.com>" \
    PRODUCT_NAME="Acme ID" \
    BRAND_COLOR="#0a7d5a" \
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

TESSERA_URL="$URL" CHROMIUM="$CHROMIUM" E2E_ARTIFACTS="$WORK/artifacts" E2E_MAILDIR="$WORK/maildir" \
  node --test --test-concurrency=1 --test-reporter=spec e2e/demo.test.mjs e2e/pages.test.mjs e2e/passkeys.test.mjs
