#!/usr/bin/env bash
# Runs the whole test suite against a real Postgres (testcontainers).
# Starts Docker and builds the local Postgres image first if needed; extra arguments go to
# `cargo test` (e.g. scripts/test.sh --test signup).
# With TEST_DATABASE_URL set, the tests use that server instead; only the database fault tests
# (tests/faults/database.rs: they pause and restart a Postgres container of their own) still need Docker.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  ensure_postgres_image
fi
# --no-fail-fast: a failing test binary must not hide the results of the others.
exec cargo test --no-fail-fast "$@"
