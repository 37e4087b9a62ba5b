#!/usr/bin/env bash
# Builds the release binary and the Debian package (target/debian/tessera_<version>_<arch>.deb):
# the binary, the systemd unit (deploy/systemd/tessera.service), the default env file
# (/etc/tessera/tessera.env), man pages and shell completions generated from the clap
# definitions by the binary itself (`tessera generate`), README and DEPLOY.md.
#
#   scripts/package.sh            build the .deb, print its path
#   scripts/package.sh --check    also install it with dpkg and smoke-test it (CI; needs root)
#
# Needs cargo-deb (`cargo install cargo-deb --locked`; not packaged by Debian), installed here
# when missing. Reuses the target directory of `cargo build --release`, so after the benchmark
# step of .ci/run nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
[ "${1:-}" = "--check" ] && check=1

step() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo-deb >/dev/null 2>&1; then
  step "installing cargo-deb from crates.io (a few minutes, once)"
  # Its own target directory, removed afterwards: the build products are not needed again.
  scratch="$(mktemp -d)"
  CARGO_TARGET_DIR="$scratch" cargo install cargo-deb --locked --quiet
  rm -rf "$scratch"
fi

step "release build"
# The packages scripts/bench.sh builds: cargo unifies features across them (hyper's client, for
# tessera-bench), so `-p tessera-server` alone would compile the server again after the
# benchmark step. The binary shipped is then the one the benchmarks measured.
cargo build --release --locked -p tessera-server -p tessera-bench
target_dir="${CARGO_TARGET_DIR:-target}"
tessera="$target_dir/release/tessera"

step "man pages and completions from the clap definitions"
# Where the package metadata (crates/tessera-server/Cargo.toml) expects them.
assets="$target_dir/release/deb-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$tessera" generate man "$assets/man"
gzip -9n "$assets"/man/*.1
"$tessera" generate completions bash >"$assets/completions/tessera.bash"
"$tessera" generate completions zsh >"$assets/completions/_tessera"
"$tessera" generate completions fish >"$assets/completions/tessera.fish"

step "cargo deb"
# --no-build: the binary above is the one packaged (same flags, same target directory).
deb="$(cargo deb -p tessera-server --no-build | tail -1)"
[ -f "$deb" ] || { echo "cargo deb did not produce a package: $deb" >&2; exit 1; }
echo "$deb"

[ "$check" = 1 ] || exit 0

# ---------------------------------------------------------------------------------------------
# --check: install with dpkg and run it the way the package sets it up.
step "package contents"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p' >&2
contents="$(dpkg-deb --contents "$deb")"
for path in ./usr/bin/tessera ./etc/tessera/tessera.env ./usr/lib/systemd/system/tessera.service \
  ./usr/share/man/man1/tessera.1.gz ./usr/share/man/man1/tessera-serve.1.gz \
  ./usr/share/bash-completion/completions/tessera ./usr/share/zsh/vendor-completions/_tessera \
  ./usr/share/fish/vendor_completions.d/tessera.fish ./usr/share/doc/tessera/DEPLOY.md; do
  grep -q " $path\$" <<<"$contents" || { echo "missing from the package: $path" >&2; exit 1; }
done
grep -q -- '^-rw------- 0/0 .* ./etc/tessera/tessera.env$' <<<"$contents" \
  || { echo "the env file must be mode 0600" >&2; exit 1; }

step "dpkg -i"
dpkg -i "$deb" >&2
dpkg -s tessera | grep -q '^Status: install ok installed$'
grep -qx /etc/tessera/tessera.env /var/lib/dpkg/info/tessera.conffiles
/usr/bin/tessera --version
/usr/bin/tessera --version | grep -q "^commit: $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)\$"
man -w tessera-users-create >/dev/null 2>&1 || [ -f /usr/share/man/man1/tessera-users-create.1.gz ]
zcat /usr/share/man/man1/tessera.1.gz | grep -q '^.TH tessera 1'

step "systemd-analyze verify / security"
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify exits 0 on an unknown or misspelt directive (it only warns): any output fails.
  findings="$(systemd-analyze verify /usr/lib/systemd/system/tessera.service 2>&1)"
  [ -z "$findings" ] || { echo "systemd-analyze verify: $findings" >&2; exit 1; }
  systemd-analyze security --offline=true --threshold=20 /usr/lib/systemd/system/tessera.service \
    | tail -1 >&2
else
  echo "systemd-analyze not installed: unit not verified" >&2
fi

step "run as installed: /usr/bin/tessera serve with /etc/tessera/tessera.env, unprivileged"
# systemd is not PID 1 here: run what ExecStart runs, with the env file, as an unprivileged user
# and a fresh state directory standing in for /var/lib/tessera.
state="$(mktemp -d)"
chown nobody:nogroup "$state"
chmod 0700 "$state"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
metrics_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$state.log"
(
  set -a
  # shellcheck disable=SC1091
  . /etc/tessera/tessera.env
  set +a
  export DATA_DIR="$state" BIND_ADDR="127.0.0.1:$port" METRICS_ADDR="127.0.0.1:$metrics_port"
  # Plain HTTP on loopback in this test (the env file assumes HTTPS through a proxy).
  export COOKIE_SECURE=false
  cd "$state"
  exec setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs /usr/bin/tessera serve
) >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$state" "$log"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >&2
echo >&2
email="deb-$RANDOM@example.com"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"username\":\"deb$RANDOM\",\"password\":\"correct horse battery staple 42\"}" \
  "http://127.0.0.1:$port/register"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple 42\"}" "http://127.0.0.1:$port/login"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -q '^tessera_'
[ "$(stat -c %U "$state/tessera.db")" = nobody ] || { echo "database not owned by the service user" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid" || { echo "tessera did not stop cleanly on SIGTERM" >&2; cat "$log" >&2; exit 1; }
step "package ok: installed, --version, unit verified, served as installed, stopped on SIGTERM"
