# Shared by scripts/test.sh, scripts/dev.sh and .ci/run (source it; do not run it).
# Makes sure Docker runs and the local Postgres test image exists.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TEST_POSTGRES_IMAGE=${TEST_POSTGRES_IMAGE:-atomic-signup-postgres:15}

# Installs Debian packages that are missing (needs root and apt-get).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    # Installed means "install ok installed": a removed package whose config files remain
    # ("deinstall ok config-files") still satisfies `dpkg -s`, but its programs are gone.
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing packages: ${missing[*]} (install them, or run as root on Debian)" >&2
    return 1
  fi
  echo "installing ${missing[*]}"
  apt_update
  # DPkg::Lock::Timeout: wait up to 10 minutes for a held dpkg lock (unattended-upgrades, another
  # apt-get) instead of failing at once.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

# `apt-get update`, waiting up to 10 minutes for a held lock. DPkg::Lock::Timeout covers the dpkg
# lock, but apt-get update also takes the lists lock (/var/lib/apt/lists/lock), which apt 2.6
# (Debian 12) does not wait for: that failure is retried every 5 s until the deadline.
apt_update() {
  local out deadline=$((SECONDS + 600)) said=
  while :; do
    if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq 2>&1); then
      [ -z "$out" ] || echo "$out"
      return 0
    fi
    if [[ "$out" != *"Could not get lock"* ]] || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$out" >&2
      return 1
    fi
    [ -n "$said" ] || echo "apt-get update: waiting for a held apt lock (another apt-get running?)"
    said=1
    sleep 5
  done
}

# Starts dockerd when no engine answers, and waits for it.
ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  # The engine is what is needed, not just the client: some machines ship `docker` alone.
  command -v dockerd >/dev/null || apt_install docker.io || return 1
  if ! command -v dockerd >/dev/null; then
    echo "Docker's engine (dockerd) is not installed and could not be installed (apt-get install docker.io)" >&2
    return 1
  fi
  if [ "$(id -u)" = 0 ]; then
    echo "starting dockerd"
    (nohup dockerd >/tmp/atomic-signup-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && return 0
      sleep 1
    done
    tail -n 20 /tmp/atomic-signup-dockerd.log >&2
  fi
  echo "Docker is not running and could not be started" >&2
  return 1
}

# Builds the Postgres test image from Debian's packages unless an image of that name exists
# (or can be pulled, for names other than our local one).
ensure_postgres_image() {
  ensure_docker
  docker image inspect "$TEST_POSTGRES_IMAGE" >/dev/null 2>&1 && return 0
  if [ "$TEST_POSTGRES_IMAGE" != "atomic-signup-postgres:15" ]; then
    docker pull "$TEST_POSTGRES_IMAGE" && return 0
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  bash "$ROOT/.ci/build-postgres-image.sh" "$TEST_POSTGRES_IMAGE"
}

# Waits until Postgres in container $1 accepts connections (60 s at most); fails loudly, with the
# container's last log lines, when it never does.
wait_for_postgres() {
  local name=$1
  for _ in $(seq 1 60); do
    docker exec "$name" pg_isready -q -U postgres -h 127.0.0.1 2>/dev/null && return 0
    sleep 1
  done
  echo "Postgres in container $name did not accept connections within 60 s:" >&2
  docker logs --tail 20 "$name" >&2 || true
  return 1
}

# Headless Chromium and its WebDriver, for the browser tests (tests/browser/), from Debian's
# packages; no browser is downloaded at run time.
ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  apt_install chromium chromium-driver
}

# PgBouncer, for the pooler tests (tests/support/pgbouncer.rs starts one in transaction mode in
# front of the test Postgres), from Debian's package.
ensure_pgbouncer() {
  command -v pgbouncer >/dev/null && return 0
  [ -x /usr/sbin/pgbouncer ] && return 0
  apt_install pgbouncer
}
