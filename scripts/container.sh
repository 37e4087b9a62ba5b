#!/usr/bin/env bash
# Builds the container image from the Dockerfile and tests it: start, /healthz and the image's
# HEALTHCHECK, non-root user, register/login, a token issued before a restart still accepted
# after it, data kept across a restart and across a new container on the same volume, the
# operator CLI in the same image, a clean stop on SIGTERM.
#
#   scripts/container.sh
#   TESSERA_IMAGE=tessera:latest scripts/container.sh   test an image built elsewhere (e.g. the
#                                                        Dockerfile's default, full build)
#
# Runs with Debian's podman (installed when missing). No image registry is needed: the
# Dockerfile's runtime base, docker.io/library/debian:bookworm-slim, is made locally from
# Debian packages with mmdebstrap when it is not in podman's storage, and the `prebuilt` stage
# packs the host's release binary (built here when missing) instead of compiling in a Rust
# image. What this machine kind needs (a Firecracker VM without CAP_SYS_RESOURCE and with
# hybrid cgroups): runc rather than crun, rlimits no higher than the host's, and chroot
# isolation for the build's RUN step.
set -euo pipefail
cd "$(dirname "$0")/.."

base=docker.io/library/debian:bookworm-slim
image="${TESSERA_IMAGE:-localhost/tessera:ci}"
step() { printf '==> %s\n' "$*" >&2; }

missing=()
# The set this script was proven with on this machine kind (podman's recommends, minus the
# desktop ones): uidmap, fuse-overlayfs and slirp4netns besides podman itself.
command -v podman >/dev/null 2>&1 || missing+=(podman uidmap fuse-overlayfs slirp4netns)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
podman --version >&2

if ! podman image exists "$base"; then
  step "making $base from Debian packages (mmdebstrap, minbase)"
  rootfs="$(mktemp --suffix=.tar)"
  mmdebstrap --quiet --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$rootfs" http://deb.debian.org/debian
  podman import --quiet --change 'CMD ["/bin/bash"]' "$rootfs" "$base" >/dev/null
  rm -f "$rootfs"
fi

step "deploy/compose: consistent with itself and nginx.conf (its images cannot be pulled here)"
python3 - deploy/compose/compose.yaml deploy/compose/nginx.conf <<'PY'
import re, sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
nginx = open(sys.argv[2]).read()
services = compose["services"]
instances = [name for name in services if name.startswith("tessera-")]
assert len(instances) == 2, instances
assert len({services[name]["image"] for name in instances}) == 1, "one image for both instances"
proxy = services["nginx"]["networks"]["backend"]["ipv4_address"]
upstreams = re.findall(r"^\s*server\s+([\w.-]+):8000", nginx, re.M)
for name in instances:
    environment = services[name]["environment"]
    assert environment["TRUSTED_PROXIES"] == proxy, (name, "TRUSTED_PROXIES must be nginx")
    assert environment["MASTER_KEY_FILE"].startswith("/run/secrets/"), name
    assert set(services[name]["secrets"]) <= set(compose["secrets"]), name
    assert name in upstreams, (name, "missing from nginx's upstream")
assert sorted(upstreams) == sorted(instances), upstreams
print(f"compose: {', '.join(sorted(services))}; nginx upstream {', '.join(upstreams)}")
PY

# This VM refuses rlimits above its own hard limits (no CAP_SYS_RESOURCE) and crun refuses its
# hybrid cgroups; runc with explicit limits works.
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
run_flags=(--runtime runc --ulimit "nofile=$nofile:$nofile" --ulimit nproc=8192:8192)

if [ -z "${TESSERA_IMAGE:-}" ]; then
  step "release binary"
  # The packages scripts/bench.sh builds: cargo unifies features across them (hyper's client, for
  # tessera-bench), so `-p tessera-server` alone would compile the server again after the
  # benchmark step. The binary shipped is then the one the benchmarks measured.
  cargo build --release --locked -p tessera-server -p tessera-bench
  [ "${CARGO_TARGET_DIR:-target}" = target ] \
    || { mkdir -p target/release && cp "$CARGO_TARGET_DIR/release/tessera" target/release/tessera; }
  commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"

  step "podman build --target prebuilt"
  podman build --quiet --pull=never --isolation=chroot --format docker --target prebuilt \
    --build-arg TESSERA_GIT_COMMIT="$commit" -t "$image" . >/dev/null
else
  commit="$(podman run --rm "${run_flags[@]}" "$image" --version | sed -n 's/^commit: //p')"
fi
podman image inspect "$image" --format 'image {{.Id}}: {{.Size}} bytes' >&2


suffix="ci-$$"
volume="tessera-data-$suffix"
name="tessera-$suffix"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cleanup() {
  podman rm --force --time 5 "$name" >/dev/null 2>&1 || true
  podman volume rm --force "$volume" >/dev/null 2>&1 || true
  [ -n "${TESSERA_IMAGE:-}" ] || podman rmi --force "$image" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman volume create "$volume" >/dev/null

start() {
  podman run --detach --name "$name" "${run_flags[@]}" -p "127.0.0.1:$port:8000" \
    -v "$volume:/data" -e COOKIE_SECURE=false "$image" >/dev/null
  wait_healthy
}
wait_healthy() {
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  podman logs "$name" >&2 || true
  echo "the container did not answer /healthz on 127.0.0.1:$port" >&2
  return 1
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
login() {
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"container-ci\",\"password\":\"$password\"}" "http://127.0.0.1:$port/login"
}

step "start, /healthz, HEALTHCHECK, user"
start
curl -fsS "http://127.0.0.1:$port/healthz" >&2
echo >&2
podman healthcheck run "$name"
[ "$(podman exec "$name" id -u)" = 10001 ] || { echo "the server must not run as root" >&2; exit 1; }
podman exec "$name" tessera --version | grep -qx "commit: $commit"
podman exec "$name" tessera --version >&2

step "register, login, profile"
password="container test password $RANDOM $RANDOM"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"email\":\"container-ci@example.com\",\"username\":\"container-ci\",\"password\":\"$password\"}" \
  "http://127.0.0.1:$port/register"
access="$(login | json_field access_token)"
curl -fsS -H "Authorization: Bearer $access" "http://127.0.0.1:$port/profile" | grep -q '"username":"container-ci"'

step "stop (SIGTERM) and start again: account and signing keys kept"
podman stop --time 20 "$name" >/dev/null
[ "$(podman inspect "$name" --format '{{.State.ExitCode}}')" = 0 ] \
  || { podman logs "$name" >&2; echo "tessera did not exit 0 on SIGTERM" >&2; exit 1; }
podman start "$name" >/dev/null
wait_healthy
# The token from before the restart still verifies: the key ring lives in the volume's database.
curl -fsS -H "Authorization: Bearer $access" "http://127.0.0.1:$port/profile" | grep -q '"username":"container-ci"'
login | json_field access_token >/dev/null

step "a new container on the same volume, and the operator CLI in the image"
podman rm --force --time 20 "$name" >/dev/null
start
login | json_field access_token >/dev/null
podman run --rm "${run_flags[@]}" -v "$volume:/data" "$image" users list | grep -q container-ci
step "container ok"
