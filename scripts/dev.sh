#!/usr/bin/env bash
# Runs the service locally: a Postgres container prepared like a Supabase database
# (tests/fixtures/supabase_auth.sql), the migrations, then `atomic-signup serve` on :8000, and the
# example page (examples/web/) on :8080 (DEV_WEB_PORT).
# DATABASE_URL from the environment or .env wins over the local container.
# Stop the database with: docker rm -f atomic-signup-dev-db
# The ports it listens on must be free: BIND_ADDR (default 0.0.0.0:8000), METRICS_BIND_ADDR
# (default 127.0.0.1:9100; empty = metrics off) and DEV_WEB_PORT (default 8080); it stops at once,
# naming the variable to set, when one is taken.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ -f .env ]; then set -a; source .env; set +a; fi

bind_addr=${BIND_ADDR:-0.0.0.0:8000}
# Unset: the service's default; set but empty (or blank): metrics off.
metrics_addr=${METRICS_BIND_ADDR-127.0.0.1:9100}
metrics_addr=${metrics_addr//[[:space:]]/}
web_port=${DEV_WEB_PORT:-8080}

# True when something accepts TCP connections on host $1, port $2 (bash's /dev/tcp; 2 s at most).
port_taken() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Stops with a message when the port of address $2 (host:port, [v6]:port) is taken; $1 is the
# variable that sets it. A wildcard address (0.0.0.0, [::]) is probed on loopback.
require_free_addr() {
  local var=$1 addr=$2 host port
  port=${addr##*:}
  host=${addr%:*}
  host=${host#[}
  host=${host%]}
  case "$host" in "" | 0.0.0.0 | "::") host=127.0.0.1 ;; esac
  if port_taken "$host" "$port"; then
    echo "port $port is taken: set $var=${addr%:*}:$((port + 1)) (or stop what listens there)" >&2
    exit 1
  fi
}

# The API (BIND_ADDR), the metrics (METRICS_BIND_ADDR, unless off) and, when python3 serves it,
# the example page (DEV_WEB_PORT) must find their ports free.
check_ports() {
  require_free_addr BIND_ADDR "$bind_addr"
  if [ -n "$metrics_addr" ]; then
    require_free_addr METRICS_BIND_ADDR "$metrics_addr"
  fi
  if command -v python3 >/dev/null && port_taken 127.0.0.1 "$web_port"; then
    echo "port $web_port is taken: set DEV_WEB_PORT=$((web_port + 1)) (or stop what listens there)" >&2
    exit 1
  fi
}
check_ports

# What a first run does, said before it starts.
first_run=()
if [ -z "${DATABASE_URL:-}" ] && ! docker image inspect "$TEST_POSTGRES_IMAGE" >/dev/null 2>&1; then
  first_run+=("install the Debian packages it lacks (docker.io, debootstrap) with apt-get and start dockerd, if needed"
    "build the local Postgres image $TEST_POSTGRES_IMAGE from Debian's packages")
fi
if [ ! -x "${CARGO_TARGET_DIR:-$ROOT/target}/release/atomic-signup" ]; then
  first_run+=("compile the service in release mode (cargo build --release)")
fi
if [ ${#first_run[@]} -gt 0 ]; then
  echo "First run: this takes up to about 8 minutes (later runs start in seconds). dev.sh will:"
  printf '  - %s\n' "${first_run[@]}"
fi

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_postgres_image
  name=atomic-signup-dev-db
  port=${DEV_DB_PORT:-54322}
  if ! docker ps --format '{{.Names}}' | grep -qx "$name"; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" -p "127.0.0.1:$port:5432" \
      -e POSTGRES_PASSWORD=postgres "$TEST_POSTGRES_IMAGE" >/dev/null
  fi
  wait_for_postgres "$name"
  if [ "$(docker exec "$name" psql -qtA -U postgres -c "select to_regclass('auth.users') is not null")" != t ]; then
    docker exec -i "$name" psql -q -v ON_ERROR_STOP=1 -U postgres <tests/fixtures/supabase_auth.sql
  fi
  export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:$port/postgres"
fi

# One local instance: a made-up secret will do (replicas must share theirs).
export IDEMPOTENCY_SECRET="${IDEMPOTENCY_SECRET:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}"
cargo run --release -- migrate

# Again, now that the build is done: something may have taken a port meanwhile.
check_ports

# The example page (examples/web/) on its own origin, allowed to call the API.
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-http://localhost:$web_port,http://127.0.0.1:$web_port}"
if command -v python3 >/dev/null; then
  # Served from a temp dir: examples/web/ (linked, so edits show on reload) with a config.js of
  # its own pointing the page at this service (BIND_ADDR's port, default 8000).
  api="http://localhost:${bind_addr##*:}"
  web_dir=$(mktemp -d)
  trap 'kill "${web_pid:-}" 2>/dev/null; rm -rf "$web_dir"' EXIT
  for f in "$ROOT"/examples/web/*; do
    [ "$(basename "$f")" = config.js ] || ln -s "$f" "$web_dir/"
  done
  printf 'export const apiBase = "%s";\n' "$api" >"$web_dir/config.js"
  python3 -m http.server "$web_port" --bind 127.0.0.1 -d "$web_dir" >/dev/null 2>&1 &
  web_pid=$!
  echo "example page: http://localhost:$web_port/ (its API: $api)"
else
  echo "python3 not found: the example page is not served (serve examples/web/ with a config.js" \
    "saying: export const apiBase = \"http://localhost:8000\";)"
fi
cargo run --release -- serve
