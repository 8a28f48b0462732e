#!/usr/bin/env bash
# Regenerates the sqlx offline data (.sqlx/) that lets `cargo build` check every sqlx::query!
# without a database; with --check, fails when .sqlx/ is stale instead (CI runs that).
# Starts a throwaway Postgres from the test image, applies tests/fixtures/supabase_auth.sql and
# the migrations, runs `cargo sqlx prepare [--check]`, removes the container.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
command -v sqlx >/dev/null || cargo install sqlx-cli --version '^0.8' --no-default-features \
  --features postgres,rustls --locked
ensure_postgres_image

name=atomic-signup-sqlx-$$
docker run -d --name "$name" -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=postgres \
  "$TEST_POSTGRES_IMAGE" >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1' EXIT
wait_for_postgres "$name"
port=$(docker port "$name" 5432/tcp | head -n 1 | sed 's/.*://')
docker exec -i "$name" psql -q -v ON_ERROR_STOP=1 -U postgres <tests/fixtures/supabase_auth.sql
export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:$port/postgres"
sqlx migrate run --source migrations >/dev/null
SQLX_OFFLINE=false cargo sqlx prepare "$@"
