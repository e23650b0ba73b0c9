#!/usr/bin/env bash
# Local stand-ins for the three images docker-compose.yaml and the Dockerfile start from, for a
# machine that reaches no container registry but Debian's archive and PyPI (this project's CI):
#   sa-hygiene-standin/debian:bookworm   a minimal bookworm rootfs (mmdebstrap, docker import)
#   <the Dockerfile's FROM>              Airflow in a virtualenv, user airflow 50000:0, /entrypoint
#   <postgres's image>, <redis's image>  Debian's PostgreSQL and Redis
# Each is tagged as the official image it stands in for and labelled org.sa-hygiene.standin.
# What they do not check: README, "Deploying it".
#
#   deploy/standins/build.sh [airflow|postgres|redis ...]   (all three by default)
#   deploy/standins/build.sh --tags                         (the three tags, on one line)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BASE=sa-hygiene-standin/debian:bookworm
UV_VERSION=$(sed -n 's/^UV_VERSION := *//p' "$root/Makefile")

# The tags, read from the files that use them.
airflow_image=$(sed -n 's/^FROM \(apache\/airflow:[^ ]*\).*/\1/p' "$root/Dockerfile")
postgres_image=$(sed -n 's/^ *image: *\(postgres:[^ ]*\)$/\1/p' "$root/docker-compose.yaml")
redis_image=$(sed -n 's/^ *image: *\(redis:[^ ]*\)$/\1/p' "$root/docker-compose.yaml")
airflow_version=$(sed -n 's/^apache\/airflow:\([0-9.]*\)-.*/\1/p' <<<"$airflow_image")
[ -n "$airflow_image" ] && [ -n "$postgres_image" ] && [ -n "$redis_image" ] && [ -n "$airflow_version" ] || {
  echo "cannot read the image tags from Dockerfile and docker-compose.yaml" >&2; exit 1; }

base() {
  docker image inspect "$BASE" >/dev/null 2>&1 && return
  command -v mmdebstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; }
  # The host's own Debian sources when it has them (the mirror it is allowed to reach).
  local sources=()
  [ -f /etc/apt/sources.list.d/debian.sources ] && sources=(/etc/apt/sources.list.d/debian.sources)
  echo "building $BASE (mmdebstrap)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm - "${sources[@]}" | docker import - "$BASE" >/dev/null
}

build() {  # build NAME TAG [docker build args...]
  local name=$1 tag=$2 ctx
  shift 2
  ctx=$(mktemp -d)
  cp -r "$here/$name/." "$ctx/"
  # A TLS-inspecting proxy's CA, when the host trusts one: pip and uv inside the build need it.
  mkdir -p "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  [ "$name" = airflow ] && cp "$root/requirements.lock" "$ctx/"
  echo "building the stand-in $tag"
  DOCKER_BUILDKIT=1 docker build --quiet --tag "$tag" "$@" "$ctx" >/dev/null
  rm -rf "$ctx"
}

if [ "${1:-}" = --tags ]; then
  echo "$airflow_image $postgres_image $redis_image"
  exit 0
fi

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(airflow postgres redis)
base
for name in "${wanted[@]}"; do
  case "$name" in
    airflow) build airflow "$airflow_image" --build-arg "AIRFLOW_VERSION=$airflow_version" --build-arg "UV_VERSION=$UV_VERSION" ;;
    postgres) build postgres "$postgres_image" ;;
    redis) build redis "$redis_image" ;;
    *) echo "unknown stand-in $name" >&2; exit 2 ;;
  esac
done
