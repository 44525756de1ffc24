# syntax=docker/dockerfile:1
#
# Triggers API container image.
#
#   docker build -t triggers-api:0.1.0 .          (or scripts/docker-build.sh)
#   docker run --init -e DATABASE_URL=postgres://... -p 8080:8080 -p 9090:9090 triggers-api:0.1.0
#
# Reviewed, not built where it was written: the development machine has no Docker engine, so this
# image has never been built or run there. What was run instead, outside a container: the service and
# its HTTP, shutdown and OpenAPI tests on Debian's Node 24.22 with glibc 2.43 and on Node 20 with
# Debian 13's glibc 2.41 — both loading the uWS v20.57 binary this image relies on.
#
# Why Node 24 on trixie-slim (Debian 13, glibc 2.41): Node 24 is the newest LTS line that the
# uWebSockets.js binaries cover. The service loads the uWS v20.57 build
# (@btc-vision/uwebsockets.js@20.57.0, an optional dependency; src/http/uws-choice.ts decides), whose
# Linux binaries exist for Node 20/22/24/25 on x64 and arm64 and need glibc >= 2.38 — so not
# bookworm (glibc 2.36), where only the older v20.30 build loads and only on Node 20. Node 26 has no
# binary in either build; Alpine (musl) has none at all. Either way start-up stops with one line
# naming the missing binary, never a slow fallback. Override NODE_IMAGE only with another Node 22/24
# image on glibc >= 2.38, or node:20-bookworm-slim (the v20.30 build).

ARG NODE_IMAGE=node:24-trixie-slim

# ---- build: install everything from the lockfile, type-check src/ and bundle each thread's entry into
# dist/ (scripts/build.js: tsc, then esbuild), drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# postinstall (scripts/patch-postgres.js) repairs a postgres.js 3.4.9 defect; it must be present for npm ci.
COPY package.json package-lock.json ./
COPY scripts/patch-postgres.js ./scripts/patch-postgres.js
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.js ./scripts/build.js
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: the bundles, production node_modules, migrations; no compiler, no src/ ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    METRICS_PORT=9090
# DATABASE_URL is expected from the environment (docker run -e, a Kubernetes Secret, fly secrets).
# Without it the service starts an embedded PostgreSQL under DATA_DIR (default ./.data, i.e.
# /app/.data), which needs a writable DATA_DIR (a volume owned by uid 1000). That is for trying the
# image out, not for production images: the files are owned by root and read-only for the service.
WORKDIR /app
# package.json also marks the project root, from which the bundles find sql/ and generated/.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY sql ./sql
# Response serializers compiled ahead of time (scripts/gen-serializers.ts); loaded at run time.
COPY generated ./generated
# bin/ and scripts/ensure-build.js are the `triggers-api` command. Its ensureBuild() compares
# dist/ with src/, and src/ is not in this image, so run the compiled entry point directly:
# `node dist/cli.js serve | migrate | keygen --org NAME --tier T`.
COPY bin ./bin
COPY scripts/ensure-build.js ./scripts/ensure-build.js

# The image's `node` user, given numerically (uid/gid 1000) so that Kubernetes runAsNonRoot can
# verify it is not root.
USER 1000:1000
EXPOSE 8080 9090

# Readiness, not liveness: 503 while PostgreSQL is unreachable. Only `docker run` and Compose use
# this; Fly.io and Kubernetes use their own checks (fly.toml, deploy/kubernetes.yaml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM drains (stop accepting, answer requests already read, flush the writer, finish or release
# deliveries) and exits 0 within SHUTDOWN_TIMEOUT_MS (default 30 s): give the runtime a longer
# stop timeout than that (docker stop -t 40, Kubernetes terminationGracePeriodSeconds 40).
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli.js", "serve"]
