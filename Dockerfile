# Tessera's container image: a release build in a Rust image, run from Debian slim as a
# non-root user, the SQLite file (and nothing else) in the /data volume.
#
#   docker build -t tessera --build-arg TESSERA_GIT_COMMIT="$(git rev-parse --short=12 HEAD)" .
#   docker run -p 8000:8000 -v tessera-data:/data tessera
#
# The image's entrypoint is the `tessera` binary with `serve` as its default command, so the
# operator commands run in the same image: `docker run --rm -v tessera-data:/data tessera users
# list`. Configuration is the environment (README "Configuration"); secrets as files with
# `<NAME>_FILE=/run/secrets/...` (deploy/compose/ shows it). docs/DEPLOY.md has the details.
#
# Stages: `build` compiles; `runtime` (the default, last) copies its binary; `prebuilt` copies
# a binary built on the host instead (`--target prebuilt`, used by scripts/container.sh in CI,
# where the release binary already exists; the host must be Debian 12 or have an older glibc).

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
# What both final stages share: the user, the volume, the environment, the health check.
FROM ${RUNTIME_IMAGE} AS runtime-base
# A fixed uid, so a volume or a bind mount can be prepared for it (chown 10001).
RUN useradd --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0700 /data
# Listen on every interface of the container (the default, 127.0.0.1, is unreachable from
# outside it); the database under /data.
ENV BIND_ADDR=0.0.0.0:8000 \
    DATA_DIR=/data \
    LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001
# /healthz over bash's /dev/tcp: no curl in the image. The port is BIND_ADDR's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${BIND_ADDR##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# A binary built on the host (`cargo build --release -p tessera-server`); CI's container test.
FROM runtime-base AS prebuilt
COPY --chmod=0755 target/release/tessera /usr/local/bin/tessera

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# No .git in the build context: the commit `tessera --version` shows comes from here.
ARG TESSERA_GIT_COMMIT=unknown
ENV TESSERA_GIT_COMMIT=${TESSERA_GIT_COMMIT} CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tessera-server \
    && install -D -m 0755 target/release/tessera /out/tessera

# ---------------------------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=build /out/tessera /usr/local/bin/tessera
