#!/usr/bin/env bash
# Builds the container image as triggers-api:<version from package.json> (and :latest).
# Needs a Docker engine (not available on the machine this project was developed on).
#   scripts/docker-build.sh [extra docker build args, e.g. --platform linux/arm64]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p "require('./package.json').version")
image="${IMAGE:-triggers-api}"
docker build --tag "${image}:${version}" --tag "${image}:latest" "$@" .
echo "built ${image}:${version}"
