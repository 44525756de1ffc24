#!/usr/bin/env bash
# Runs the image built by scripts/docker-build.sh.
#   DATABASE_URL=postgres://user:pass@host:5432/db scripts/docker-run.sh            # serve on 8080/9090
#   DATABASE_URL=... scripts/docker-run.sh migrate
#   DATABASE_URL=... scripts/docker-run.sh keygen --org NAME --tier pro
# DATABASE_URL is passed through from your environment and is required: without it the image
# would start an embedded PostgreSQL, which needs a writable DATA_DIR volume (not for production).
# A database on the host is reachable as host.docker.internal (mapped below, Linux included).
# Optional: HOST_PORT (8080), HOST_METRICS_PORT (9090), THREADS (1), LOG_LEVEL (info), IMAGE.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL (postgres://user:pass@host:5432/db)}"
version=$(node -p "require('./package.json').version")
image="${IMAGE:-triggers-api}:${version}"
command=("${@:-serve}")

args=(--rm --init --add-host host.docker.internal:host-gateway
  -e DATABASE_URL -e LOG_LEVEL="${LOG_LEVEL:-info}" -e THREADS="${THREADS:-1}")
if [ -t 0 ] && [ -t 1 ]; then args+=(-it); fi
if [ "${command[0]}" = serve ]; then
  # Publish the API and metrics ports; --stop-timeout covers the 30 s graceful drain on SIGTERM.
  args+=(--name triggers-api --stop-timeout 40
    -p "${HOST_PORT:-8080}:8080" -p "${HOST_METRICS_PORT:-9090}:9090")
fi
exec docker run "${args[@]}" "${image}" node dist/cli.js "${command[@]}"
