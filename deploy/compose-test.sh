#!/usr/bin/env bash
# make compose-test: docker-compose.yaml run as containers (deploy/compose_test.py), after making
# sure this machine can:
#   - a Docker engine: started (dockerd in the background) when it is installed but not running,
#     installed first from Debian's docker.io when it is missing (root and apt-get needed);
#   - Docker Compose 2.24 or later and buildx: when missing or older, Debian trixie's
#     docker-compose and docker-buildx packages, unpacked as CLI plugins;
#   - the base images: used when present or pullable; where no registry is reachable, local
#     stand-ins with the same tags (deploy/standins/build.sh). COMPOSE_TEST_STANDINS=always
#     builds the stand-ins without trying a registry, =never fails instead of building them.
# Wall time of each phase is printed; see README, "The compose test".
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
say() { echo "[compose-test $(( $(date +%s) - t0 ))s] $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "needs root for: $*" >&2; return 1; fi; }

# --- a Docker engine ----------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    say "installing Debian's docker.io"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd in the background (log: /var/log/sa-hygiene-dockerd.log)"
    as_root sh -c 'nohup dockerd >/var/log/sa-hygiene-dockerd.log 2>&1 &'
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start: /var/log/sa-hygiene-dockerd.log" >&2; exit 1; }
  fi
fi

# --- Compose 2.24+ and buildx -------------------------------------------------------------------
compose_ok() {
  local v
  v=$(docker compose version --short 2>/dev/null) || return 1
  v=${v#v}
  [ "$(printf '%s\n%s\n' 2.24.0 "${v%%[-+]*}" | sort -V | head -1)" = 2.24.0 ]
}
if ! compose_ok || ! docker buildx version >/dev/null 2>&1; then
  say "installing Debian trixie's docker-compose and docker-buildx as Docker CLI plugins"
  apt_dir=$(mktemp -d)
  # The suite trixie from the mirror this machine's own Debian sources name.
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" > "$apt_dir/trixie.sources"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$apt_dir/x"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/trixie.sources" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download docker-compose docker-buildx >/dev/null)
  for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$apt_dir/x"; done
  if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=$HOME/.docker/cli-plugins; fi
  mkdir -p "$plugins"
  cp "$apt_dir"/x/usr/libexec/docker/cli-plugins/docker-compose "$apt_dir"/x/usr/libexec/docker/cli-plugins/docker-buildx "$plugins/"
  rm -rf "$apt_dir"
  compose_ok || { echo "Docker Compose 2.24 or later is needed: $(docker compose version 2>&1)" >&2; exit 1; }
fi
say "$(docker compose version), $(docker buildx version | cut -d' ' -f1-2), engine $(docker version --format '{{.Server.Version}}')"

# --- base images: present, pulled, or stand-ins --------------------------------------------------
read -r airflow_image postgres_image redis_image < <(deploy/standins/build.sh --tags)
standins=()
for pair in "airflow $airflow_image" "postgres $postgres_image" "redis $redis_image"; do
  name=${pair%% *} image=${pair#* }
  label=$(docker image inspect --format '{{index .Config.Labels "org.sa-hygiene.standin"}}' "$image" 2>/dev/null || echo missing)
  [ "$label" != "<no value>" ] || label=
  if [ "$label" = missing ]; then
    if [ "${COMPOSE_TEST_STANDINS:-auto}" != always ] && timeout 300 docker pull -q "$image" >/dev/null 2>&1; then
      say "$image: pulled"
      continue
    fi
    [ "${COMPOSE_TEST_STANDINS:-auto}" != never ] || { echo "$image cannot be pulled" >&2; exit 1; }
    standins+=("$name")
  elif [ -n "$label" ]; then
    standins+=("$name")  # a stand-in of ours: rebuilt, from its cache when nothing changed
  else
    say "$image: present"
  fi
done
if [ ${#standins[@]} -gt 0 ]; then
  t=$(date +%s)
  deploy/standins/build.sh "${standins[@]}"
  say "stand-ins (${standins[*]}) ready in $(( $(date +%s) - t ))s"
fi

# --- the test -------------------------------------------------------------------------------------
set +e
python3 deploy/compose_test.py
status=$?
say "wall time $(( $(date +%s) - t0 ))s"
exit $status
