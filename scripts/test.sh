#!/usr/bin/env bash
# Runs the whole test suite against a real Postgres (testcontainers).
# Starts Docker and builds the local Postgres image first if needed; installs Chromium (browser
# tests) and PgBouncer (pooler tests) from Debian's packages when missing.
# Without arguments: every test binary, then the signup / idempotency / login / outbox tests of
# tests/api once more with the service reaching Postgres through PgBouncer in transaction mode
# (TEST_POOLER=pgbouncer). Extra arguments go to one `cargo test` instead
# (e.g. scripts/test.sh --test api signup::).
# With TEST_DATABASE_URL set, the tests use that server instead; only the database fault tests
# (tests/faults/database.rs: they pause and restart a Postgres container of their own) still need Docker.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  ensure_postgres_image
fi
ensure_chromium
ensure_pgbouncer
if [ $# -gt 0 ]; then
  exec cargo test --no-fail-fast "$@"
fi
# --no-fail-fast: a failing test binary must not hide the results of the others.
# The tests' output (stdout, where the `test result:` lines are) is also kept in $log, for the
# closing line; with pipefail a pipeline's status is cargo's, not tee's.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --no-fail-fast | tee "$log" || status=$?
echo "== the same signup, idempotency, login, outbox and hook tests through PgBouncer (transaction mode)"
TEST_POOLER=pgbouncer cargo test --test api -- signup:: idempotency:: login:: outbox:: pooler:: hooks:: \
  | tee -a "$log" || status=$?
# One closing line for the whole run, summed over every test binary of both runs (.ci/run repeats
# it at the very end). A build error or a crashed test binary fails the run without a failed test.
if [ "$status" -ne 0 ] && ! grep -Eq '^test result: .* [1-9][0-9]* failed' "$log"; then
  echo "cargo test exited with status $status (a build error, or a test binary that crashed?)"
fi
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
