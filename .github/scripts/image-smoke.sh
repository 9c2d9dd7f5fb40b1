#!/usr/bin/env bash
# Smoke test of a built image (.github/workflows/image.yml): the runtime image, not just the
# build, is what the workflow proves. Usage: image-smoke.sh IMAGE
set -euo pipefail
image="${1:?usage: image-smoke.sh IMAGE}"

step() { printf '\n==> %s\n' "$*"; }

step "runs as the fixed non-root user"
user="$(docker image inspect --format '{{.Config.User}}' "$image")"
echo "User: $user"
test "$user" = "10001:10001"
test "$(docker run --rm --entrypoint id "$image" -u)" = "10001"
# pim-chat's history directory belongs to that user (a named volume mounted there inherits it).
docker run --rm --entrypoint test "$image" -w /home/pim/.local/share/pim-audit

step "CA certificates are installed"
docker run --rm --entrypoint test "$image" -s /etc/ssl/certs/ca-certificates.crt

step "pim-batch is the entry point; pim-chat is beside it"
docker run --rm "$image" --version
docker run --rm --entrypoint pim-chat "$image" --version

# A read-only root file system, as Kubernetes' readOnlyRootFilesystem and many job runners
# set it: a scan writes nothing but its report (stdout) and logs (stderr).
step "pim-batch --demo renders the report (read-only root file system)"
out="$(mktemp)"
docker run --rm --read-only "$image" --demo > "$out"
head -n 5 "$out"
grep -q '^# PIM Activity Audit Report' "$out"

step "pim-chat --demo answers a piped session"
printf 'scan\nexit\n' | docker run --rm -i --entrypoint pim-chat "$image" --demo > "$out"
head -n 5 "$out"
test -s "$out"

echo
echo "image smoke test passed"
