#!/usr/bin/env bash
# End-to-end test of the browser demo (B12) and the hosted pages (C4) in real headless Chromium.
#
# Builds `tessera`, starts a real SMTP server (aiosmtpd, writing a Maildir) and `tessera serve`
# on free loopback ports with a throwaway DATA_DIR (SQLite, managed keys), plain-http cookies
# (COOKIE_SECURE=false), a 2-second access token (so the tests see it expire and the page
# refresh it), no leeway, raised rate limits, SMTP_URL pointing at aiosmtpd, PUBLIC_URL = the
# server's own address (so mailed links open in the browser) and a product name and colour;
# runs e2e/demo.test.mjs, e2e/pages.test.mjs and e2e/passkeys.test.mjs (Chromium's virtual
# WebAuthn authenticator) with node's test runner, one after the other; stops the server.
#
# Then e2e/passkeys.test.mjs again on two instances: two `tessera serve` sharing a fresh
# PostgreSQL database (tessera_e2e_<pid>, created and dropped with psql next to the database of
# $TESSERA_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) and Redis
# ($TESSERA_TEST_REDIS_URL, default redis://127.0.0.1:6379, under a private REDIS_KEY_PREFIX
# whose keys are deleted afterwards), behind one origin: Debian's nginx (non-daemon, in the work
# folder) on a loopback port, round-robin to both (no stickiness), passing Host,
# X-Forwarded-Host, X-Forwarded-Proto and X-Forwarded-For; PUBLIC_URL = http://localhost:<nginx
# port> on both, TRUSTED_PROXIES=127.0.0.1. nginx's access log names the upstream of every
# request: the script fails unless the passkey ceremony requests reached both instances and at
# least one ceremony was started on one instance and finished on the other.
#
# aiosmtpd comes from $TESSERA_PYTHON (.ci/run exports the .venv-ci one), else ./.venv-ci.
# The two-instance phase needs psql, redis-cli, nginx ($NGINX, else `nginx` or /usr/sbin/nginx)
# and the PostgreSQL and Redis above (.ci/run starts them).
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
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
for tool in psql redis-cli "$NGINX"; do
  command -v "$tool" >/dev/null || {
    echo "e2e: $tool is required for the two-instance phase (apt-get install postgresql-client redis-tools nginx)" >&2
    exit 1
  }
done
PG_BASE_URL="${TESSERA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
PG_ADMIN_URL="${PG_BASE_URL%/*}/postgres"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
REDIS_URL_E2E="${TESSERA_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
psql -qAt "$PG_ADMIN_URL" -c 'SELECT 1' >/dev/null \
  || { echo "e2e: no PostgreSQL at $PG_ADMIN_URL (set TESSERA_TEST_DATABASE_URL)" >&2; exit 1; }
[ "$(redis-cli -u "$REDIS_URL_E2E" ping 2>/dev/null)" = PONG ] \
  || { echo "e2e: no Redis at $REDIS_URL_E2E (set TESSERA_TEST_REDIS_URL)" >&2; exit 1; }
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
NGINX_PID=""
A_PID=""
B_PID=""
CLUSTER_DB="tessera_e2e_$$"
CLUSTER_DB_CREATED=""
REDIS_PREFIX="tessera-e2e-$$:"
PHASE="single instance"
stop() { # pid
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  local status=$?
  for pid in "$NGINX_PID" "$A_PID" "$B_PID" "$SERVER_PID" "$SMTP_PID"; do
    stop "$pid"
  done
  if [ -n "$CLUSTER_DB_CREATED" ]; then
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $CLUSTER_DB WITH (FORCE)" >&2 \
      || echo "e2e: could not drop the database $CLUSTER_DB" >&2
    redis-cli -u "$REDIS_URL_E2E" --scan --pattern "$REDIS_PREFIX*" \
      | xargs -r redis-cli -u "$REDIS_URL_E2E" del >/dev/null 2>&1 || true
  fi
  if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "e2e: failed ($PHASE); logs and screenshots kept in $WORK" >&2
    if [ "$PHASE" = "single instance" ]; then
      tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
    else
      for log in a.log b.log nginx/logs/error.log; do
        echo "--- $log" >&2
        tail -n 20 "$WORK/$log" >&2 2>/dev/null || true
      done
    fi
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
stop "$SERVER_PID"
SERVER_PID=""

# --- Two instances behind nginx ----------------------------------------------------------------
PHASE="two instances behind nginx"
psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $CLUSTER_DB WITH (FORCE)" -c "CREATE DATABASE $CLUSTER_DB" >&2
CLUSTER_DB_CREATED=1
CLUSTER_DB_URL="${PG_BASE_URL%/*}/$CLUSTER_DB"
A_PORT="$(free_port)"
B_PORT="$(free_port)"
PROXY_PORT="$(free_port)"
PROXY_URL="http://localhost:$PROXY_PORT"

wait_healthy() { # base URL, pid, name
  for _ in $(seq 1 150); do
    if curl -fsS "$1/healthz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "e2e: $3 exited during startup" >&2
      exit 1
    fi
    sleep 0.2
  done
  curl -fsS "$1/healthz" >/dev/null
}

start_instance() { # name, port; the pid goes to LAST_PID
  mkdir -p "$WORK/$1/data"
  (
    cd "$WORK/$1"
    exec env -u SMTP_URL -u CORS_ORIGINS -u TOKEN_DELIVERY -u EMAIL_VERIFICATION \
      BIND_ADDR="127.0.0.1:$2" \
      DATA_DIR="$WORK/$1/data" \
      DATABASE_URL="$CLUSTER_DB_URL" \
      REDIS_URL="$REDIS_URL_E2E" \
      REDIS_KEY_PREFIX="$REDIS_PREFIX" \
      PUBLIC_URL="$PROXY_URL" \
      TRUSTED_PROXIES=127.0.0.1 \
      COOKIE_SECURE=false \
      RATE_LIMIT_LOGIN=1000/minute \
      RATE_LIMIT_LOGIN_ACCOUNT=1000/minute \
      RATE_LIMIT_REGISTER=1000/minute \
      RATE_LIMIT_API=10000/minute \
      PRODUCT_NAME="Acme ID" \
      LOG_FORMAT=text \
      LOG_LEVEL=info \
      "$BIN" serve
  ) >"$WORK/$1.log" 2>&1 &
  LAST_PID=$!
}

# A first (it migrates the fresh database and makes the signing key), then B.
start_instance a "$A_PORT"
A_PID=$LAST_PID
wait_healthy "http://127.0.0.1:$A_PORT" "$A_PID" "instance A"
start_instance b "$B_PORT"
B_PID=$LAST_PID
wait_healthy "http://127.0.0.1:$B_PORT" "$B_PID" "instance B"

# nginx: one origin, round-robin (nginx's default: no ip_hash, no stickiness) to both, with the
# proxy headers of deploy/compose/nginx.conf; the access log names each request's upstream. One
# worker, so one round-robin state: consecutive requests (a ceremony's start and finish are
# consecutive in the browser) go to different instances.
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<NGINX_CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
  log_format upstreams '\$upstream_addr \$request_method \$uri \$status';
  access_log $WORK/nginx/logs/access.log upstreams;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  upstream tessera {
    server 127.0.0.1:$A_PORT;
    server 127.0.0.1:$B_PORT;
    keepalive 8;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / {
      proxy_pass http://tessera;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
    }
  }
}
NGINX_CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" -g 'daemon off;' \
  >"$WORK/nginx/logs/stderr.log" 2>&1 &
NGINX_PID=$!
wait_healthy "http://127.0.0.1:$PROXY_PORT" "$NGINX_PID" "nginx"

TESSERA_URL="$PROXY_URL" CHROMIUM="$CHROMIUM" E2E_ARTIFACTS="$WORK/artifacts-cluster" \
  node --test --test-concurrency=1 --test-reporter=spec e2e/passkeys.test.mjs

# Both instances served the passkey ceremonies: each upstream appears among the ceremony
# requests, and some ceremony was started on one instance and finished on the other.
ACCESS_LOG="$WORK/nginx/logs/access.log"
CEREMONY='^[^ ]+ POST /(account/passkeys/register/(start|finish)|login/passkey/(start|finish)|login|login/mfa) '
grep -E "$CEREMONY" "$ACCESS_LOG" >"$WORK/ceremonies.log" || true
echo "e2e: passkey ceremony requests through nginx (upstream, method, path, status):"
sed 's/^/  /' "$WORK/ceremonies.log"
for upstream in "127.0.0.1:$A_PORT" "127.0.0.1:$B_PORT"; do
  if ! grep -qE "^$upstream POST /(account/passkeys/register|login/passkey)/(start|finish) " "$WORK/ceremonies.log"; then
    echo "e2e: no passkey ceremony request reached the instance on $upstream" >&2
    exit 1
  fi
done
# A ceremony starts with a registration's or password-less sign-in's `.../start`, or with the
# `POST /login` that asks for the second factor, and ends with the next `.../finish` or
# `/login/mfa` (the test runs one ceremony at a time). A password login that signs in at once
# (no passkey yet, or none any more) is followed by no finish and is overwritten by the next start.
crossed="$(awk '
  $3 ~ /\/start$/ || $3 == "/login" { started = $1; next }
  ($3 ~ /\/finish$/ || $3 == "/login/mfa") && started != "" {
    if ($1 != started) n++
    started = ""
  }
  END { print n + 0 }' "$WORK/ceremonies.log")"
echo "e2e: $crossed passkey ceremonies were started on one instance and finished on the other"
if [ "$crossed" -lt 1 ]; then
  echo "e2e: no passkey ceremony was started on one instance and finished on the other" >&2
  exit 1
fi
