#!/usr/bin/env bash
# Tessera's benchmark suite: one command, one table.
#
#   scripts/bench.sh            # full run: 10 s per scenario, 64 connections (about 4 minutes)
#   scripts/bench.sh --smoke    # a second per scenario, few connections (CI: the script cannot rot)
#
# Builds the release binaries (`tessera`, `tessera-bench`), then for each backend starts a
# release server on loopback with production settings (logs at INFO to a file, metrics, denylist,
# token cache, per-user and per-IP limits all on) but with the rate limits raised so that they
# count without refusing, drives it with tessera-bench, reads its RSS from /proc, stops it, and
# prints one table. Backends: SQLite (a temporary file), PostgreSQL+Redis (a fresh database
# `tessera_bench` and a private Redis key prefix), SQLite with EdDSA tokens (/profile only,
# with the token cache on, then off), and the gateway (SQLite server with UPSTREAMS; the same
# bench upstream behind (a) nginx proxy_pass, (b) Tessera's gateway, (c) nginx auth_request to
# Tessera's /auth/nginx when the server has it; SSE first-event latency; RSS with many open
# streams; needs Debian's `nginx`). Next to the SQLite and PostgreSQL+Redis servers, the same
# `/profile` and `/agent/chat` are measured on the bare baseline (`tessera-bench bare`: hyper and
# an HS256 check, nothing else), and every row gives the server's CPU time per request (from
# /proc/PID/stat), so the table shows what Tessera's stack costs on top of the thinnest server.
#
# Options: --smoke, --seconds N, --connections N, --backends "sqlite pg eddsa gateway",
#          --streams N (streams held open through the gateway; 1000),
#          --out FILE (also write the table there),
#          --server PATH (bench another `tessera` binary, e.g. an older build, for an A/B).
# Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/tessera_bench; the
#   database is dropped and created), BENCH_REDIS_URL (default redis://127.0.0.1:6379),
#   BENCH_SERVER_ENV (extra VAR=value settings for every server, e.g. "HASH_WORKERS=1").
# The numbers come from here, never from a timed assertion: the smoke run checks that every
# scenario runs and answers, not how fast.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
connections=64
login_connections=16
backends="sqlite pg eddsa gateway"
streams=1000
sse_samples=300
sse_interval_ms=1000
smoke=0
out=""
server_bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; seconds=1; connections=4; login_connections=2; streams=50; sse_samples=20; sse_interval_ms=200 ;;
    --seconds) seconds="$2"; shift ;;
    --connections) connections="$2"; shift ;;
    --backends) backends="$2"; shift ;;
    --streams) streams="$2"; shift ;;
    --out) out="$2"; shift ;;
    --server) server_bin="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

pg_url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tessera_bench}"
redis_url="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"

echo "==> building release binaries" >&2
cargo build --release --locked -p tessera-server -p tessera-bench >&2
target_dir="${CARGO_TARGET_DIR:-target}"
tessera="${server_bin:-$target_dir/release/tessera}"
loadgen="$target_dir/release/tessera-bench"

work="$(mktemp -d)"
server_pid=""
upstream_pid=""
nginx_pid=""
bare_pid=""
cleanup() {
  for pid in "$server_pid" "$upstream_pid" "$nginx_pid" "$bare_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

port=$((18000 + RANDOM % 2000))
results="$work/results"
: >"$results"

# The server's argon2 parameters: the load generator times one hash with the same ones.
hash_params="${PASSWORD_HASH_MEMORY_KIB:-19456},${PASSWORD_HASH_ITERATIONS:-2},${PASSWORD_HASH_PARALLELISM:-1}"

start_server() { # label, then VAR=value pairs
  local label="$1"; shift
  port=$((port + 1))
  mkdir -p "$work/$label"
  env -i PATH="$PATH" HOME="$work/$label" \
    BIND_ADDR="127.0.0.1:$port" DATA_DIR="$work/$label" \
    LOG_LEVEL=INFO LOG_FORMAT=json \
    RATE_LIMIT_LOGIN=100000000/minute RATE_LIMIT_REGISTER=100000000/minute \
    RATE_LIMIT_API=100000000/minute RATE_LIMIT_LOGIN_ACCOUNT=100000000/minute \
    COOKIE_SECURE=false "$@" ${BENCH_SERVER_ENV:-} \
    "$tessera" serve >"$work/$label/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      sleep 0.5 # let start-up allocations settle before the idle RSS reading
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "server $label did not start:" >&2
  tail -20 "$work/$label/server.log" >&2
  exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# The server's hashing threads: its default (half the cores) unless BENCH_SERVER_ENV sets them.
hash_workers=$(( ($(nproc) + 1) / 2 ))
for setting in ${BENCH_SERVER_ENV:-}; do
  case "$setting" in HASH_WORKERS=*) hash_workers="${setting#HASH_WORKERS=}" ;; esac
done

drive() { # label, extra tessera-bench arguments
  local label="$1"; shift
  echo "==> $label" >&2
  "$loadgen" --addr "127.0.0.1:$port" --pid "$server_pid" --label "$label" --seconds "$seconds" \
    --connections "$connections" --login-connections "$login_connections" --hash "$hash_params" --hash-workers "$hash_workers" "$@" \
    | tee -a "$results" >&2
}

wait_for_port() { # port, pid, what
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$3 did not start" >&2
  return 1
}

# nginx in front of the bench upstream, non-daemon, everything under $work/nginx: a server on
# $1 that proxies /agent/ with no auth (a), and one on $2 that first asks Tessera on $3 through
# auth_request (c), with the identity headers copied as docs/GATEWAY.md's nginx configuration
# does. Workers = cores, keep-alive to the upstream and to Tessera, no response buffering (agent
# streams), access log on (buffered), as in a production set-up.
start_nginx() { # port (a), port (c), Tessera's port, upstream's port
  local dir="$work/nginx" nofile
  nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes $(nproc);
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log $dir/logs/access.log combined buffer=64k flush=1s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  upstream bench_upstream { server 127.0.0.1:$4; keepalive 64; }
  upstream tessera { server 127.0.0.1:$3; keepalive 64; }
  server {
    listen 127.0.0.1:$1;
    location /agent/ {
      proxy_pass http://bench_upstream/;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$2;
    location /agent/ {
      auth_request /_tessera_auth;
$(for h in remote_user remote_email remote_groups remote_name x_tessera_user_id x_tessera_username \
           x_tessera_session_id x_tessera_scopes x_tessera_roles x_tessera_assertion; do
    echo "      auth_request_set \$t_$h \$upstream_http_$h;"
    echo "      proxy_set_header $(echo "$h" | sed 's/_/-/g') \$t_$h;"
  done)
      proxy_pass http://bench_upstream/;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }
    location = /_tessera_auth {
      internal;
      proxy_pass http://tessera/auth/nginx;
      proxy_http_version 1.1;
      proxy_pass_request_body off;
      proxy_set_header Connection "";
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -g 'daemon off;' >"$dir/logs/stderr.log" 2>&1 &
  nginx_pid=$!
  if ! wait_for_port "$1" "$nginx_pid" nginx; then
    cat "$dir/logs/error.log" "$dir/logs/stderr.log" >&2
    exit 1
  fi
}

stop_pid() { # the name of a variable holding a pid
  local pid="${!1}"
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  printf -v "$1" '%s' ""
}

# The bare baseline, for the SQLite and PostgreSQL+Redis rows (started once, measured in each).
bare_port=$((port + 90))
"$loadgen" bare --port "$bare_port" >"$work/bare.log" 2>&1 &
bare_pid=$!
wait_for_port "$bare_port" "$bare_pid" "the bare baseline" || exit 1
bare=(--bare "127.0.0.1:$bare_port" --bare-pid "$bare_pid")

for backend in $backends; do
  case "$backend" in
    sqlite)
      start_server sqlite
      drive SQLite "${bare[@]}"
      stop_server ;;
    eddsa)
      start_server eddsa ALGORITHM=EdDSA
      drive "SQLite EdDSA" --only healthz,profile
      stop_server
      # The same with the verified-claims cache off: every request verifies the signature.
      start_server eddsa-nocache ALGORITHM=EdDSA TOKEN_CACHE_SIZE=0
      drive "SQLite EdDSA, cache off" --only healthz,profile
      stop_server ;;
    pg)
      admin_url="${pg_url%/*}/postgres"
      db="${pg_url##*/}"
      psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >&2
      start_server pg DATABASE_URL="$pg_url" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="tessera-bench-$$:"
      drive "PostgreSQL+Redis" "${bare[@]}"
      stop_server
      redis-cli -u "$redis_url" --scan --pattern "tessera-bench-$$:*" | xargs -r redis-cli -u "$redis_url" del >/dev/null || true ;;
    gateway)
      command -v nginx >/dev/null 2>&1 || { echo "the gateway backend needs nginx (apt-get install nginx)" >&2; exit 1; }
      # The streams: a connection from the load generator to the server and one from the server
      # to the upstream each (the server raises its own limit; this is for the other two).
      ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
      up_port=$((port + 50)); nginx_port=$((port + 51)); nginx_auth_port=$((port + 52))
      "$loadgen" upstream --port "$up_port" --sse-interval-ms "$sse_interval_ms" >"$work/upstream.log" 2>&1 &
      upstream_pid=$!
      wait_for_port "$up_port" "$upstream_pid" "the bench upstream" || exit 1
      start_server gateway UPSTREAMS="/agent/=http://127.0.0.1:$up_port/" TRUSTED_PROXIES=127.0.0.1 \
        MAX_CONNECTIONS=4096
      start_nginx "$nginx_port" "$nginx_auth_port" "$port" "$up_port"
      # (c) needs the server's /auth/nginx (G2): without credentials it answers 401. A server
      # without it answers 404, and then (c) is left out rather than measured against anything else.
      auth_status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/auth/nginx" \
        -H "X-Original-URL: http://127.0.0.1:$nginx_auth_port/agent/hello" -H "X-Original-Method: GET" || true)
      forward=()
      if [ "$auth_status" = 401 ]; then
        forward=(--nginx-auth "127.0.0.1:$nginx_auth_port")
      else
        echo "NOTE|Gateway: (c) nginx auth_request + Tessera forward auth skipped: this server has no /auth/nginx (GET /auth/nginx without credentials answered $auth_status, not 401)" | tee -a "$results" >&2
      fi
      drive Gateway --only gateway,sse,streams --upstream "127.0.0.1:$up_port" --nginx "127.0.0.1:$nginx_port" \
        "${forward[@]}" --streams "$streams" --sse-samples "$sse_samples" --sse-interval-ms "$sse_interval_ms"
      stop_pid nginx_pid
      stop_server
      stop_pid upstream_pid ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
done

{
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
  echo "Load before the run ended: $(uptime | sed 's/.*load average/load average/')"
  echo "Run: ${seconds} s per scenario after a warm-up, $connections connections (login: $login_connections), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| backend | scenario | conns | req/s | p50 ms | p99 ms | non-2xx | server CPU us/req | RSS after, MiB |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  grep '^ROW|' "$results" | sed 's/^ROW//; s/$/|/'
  echo
  grep '^NOTE|' "$results" | sed 's/^NOTE|/- /'
} | tee ${out:+"$out"}

# Smoke mode: every scenario must have completed requests, all of them 2xx (the login flood
# excepted: its 503s are the hashing queue shedding load, by design).
if [ "$smoke" = 1 ]; then
  expected=$(( $(echo "$backends" | wc -w) ))
  if grep '^ROW|' "$results" | awk -F'|' '$3 !~ /the flood/ && ($5 == 0 || $8 != "0") { bad = 1 } END { exit bad }' \
    && [ "$(grep -c '^ROW|' "$results")" -ge "$expected" ]; then
    echo "smoke: every scenario answered, all 2xx" >&2
  else
    echo "smoke: a scenario completed no request or got errors" >&2
    exit 1
  fi
fi
