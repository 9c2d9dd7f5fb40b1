# syntax=docker/dockerfile:1

# The PIM Activity Audit Agent as a container image: both binaries, `pim-batch` as the entry
# point (issue 16).
#
#   docker build -t pim-audit .
#   docker run --rm pim-audit --demo                               # the bundled demo tenant
#   docker run --rm --env-file pim.env pim-audit --hours 24 --format json > report.json
#   docker run --rm -it --env-file pim.env --entrypoint pim-chat pim-audit   # the REPL instead
#
# Configuration comes from the environment (README, "Configuration"). Pass it with --env-file,
# never as `-e NAME=secret` on a command line, where the process list and shell history see it.
# .github/workflows/image.yml builds this file on every pull request and push, and pushes the
# image to GHCR on version tags `v*`.
#
# No HEALTHCHECK: the container is a run-to-completion job, not a server. Its health is the exit
# code and the alerts on the job's own runs (docs/alerting.md, "Alerts on the job's own health").

# The workspace's rust-version (Cargo.toml); the only toolchain the project is tested with.
ARG RUST_VERSION=1.95
# Builder and runtime share one Debian release, so the binaries find the glibc they were linked
# against.
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole workspace: Cargo reads every member's manifest (crates/*, bins/*, examples) even to
# build two packages. .dockerignore keeps out target/, node_modules (the pim-kql oracle is a
# test-only Node.js tool), docs, .git and every .env file.
COPY . .
# Cache mounts keep the crates.io downloads and the compiled dependencies between builds on the
# same builder. They are not part of any layer, so the binaries are copied out of target/ in the
# same step. --locked: exactly the committed Cargo.lock, or the build fails.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p pim-batch -p pim-chat \
 && install -D -m 0755 -t /out target/release/pim-batch target/release/pim-chat

# debian-slim rather than distroless: the binaries need nothing but glibc and the CA
# certificates, and nothing in the image runs a shell (ENTRYPOINT is in exec form). The shell is
# kept for one reason: the Container Apps job in docs/runbook.md computes `--end` (30 minutes in
# the past) with `/bin/sh -c` and `date`, and pim-batch has no relative end of its own yet.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# The system store is where the TLS stack looks for roots (rustls-platform-verifier reads
# /etc/ssl/certs); without it every HTTPS call to Azure fails certificate verification.
# One fixed, unprivileged UID/GID (10001, above any host's regular users), so that Kubernetes'
# runAsNonRoot can verify it and a mounted volume can be granted to it (--no-log-init: a high
# UID would otherwise grow /var/log/lastlog into a large sparse file).
# ca-certificates is deliberately unpinned: the newest root store of the release is the point.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 pim \
 && useradd --uid 10001 --gid pim --no-log-init --home-dir /home/pim --create-home \
      --shell /usr/sbin/nologin pim \
 && install -d -o 10001 -g 10001 \
      /home/pim/.local /home/pim/.local/share /home/pim/.local/share/pim-audit

COPY --from=build /out/pim-batch /out/pim-chat /usr/local/bin/

# Defaults for a local `docker build`; the workflow replaces source, revision, version and
# created with the repository's real values (docker/metadata-action).
LABEL org.opencontainers.image.title="pim-audit" \
      org.opencontainers.image.description="PIM Activity Audit Agent: pim-batch (scheduled scans, the entry point) and pim-chat (interactive investigation)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/pim-activity-audit" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# Numeric, so that runtimes can tell it is not root without reading /etc/passwd. HOME holds
# pim-chat's history (~/.local/share/pim-audit/history.txt; the directory exists and belongs to
# the user, so a named volume mounted there is writable) and is the working directory, where
# pim-batch would read a .env file (mount one read-only, or better use --env-file).
USER 10001:10001
ENV HOME=/home/pim
WORKDIR /home/pim

# pim-batch by default; `--entrypoint pim-chat` runs the REPL (with `-it` for a terminal, or
# piped input for a scripted session). No CMD: `docker run … pim-audit ARGS` passes ARGS to
# pim-batch exactly as on a host.
ENTRYPOINT ["/usr/local/bin/pim-batch"]
