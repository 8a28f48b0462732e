#!/usr/bin/env bash
# Runs the service locally: a Postgres container prepared like a Supabase database
# (tests/fixtures/supabase_auth.sql), the migrations, then `atomic-signup serve` on :8000, and the
# example page (examples/web/) on :8080 (DEV_WEB_PORT).
# DATABASE_URL from the environment or .env wins over the local container.
# Stop the database with: docker rm -f atomic-signup-dev-db
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ -f .env ]; then set -a; source .env; set +a; fi

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

# The example page (examples/web/) on its own origin, allowed to call the API.
web_port=${DEV_WEB_PORT:-8080}
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-http://localhost:$web_port,http://127.0.0.1:$web_port}"
if command -v python3 >/dev/null; then
  # Served from a temp dir: examples/web/ (linked, so edits show on reload) with a config.js of
  # its own pointing the page at this service (BIND_ADDR's port, default 8000).
  bind_addr=${BIND_ADDR:-0.0.0.0:8000}
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
