#!/usr/bin/env bash
# The benchmark: signup throughput against the argon2id hash bound, measured side by side in
# one run, plus the transaction's own timing, statements per signup, login overhead and peak RSS.
#
#   bench/run.sh            # full run (~3 min after the build); writes BENCHMARKS.md
#   bench/run.sh --short    # a few seconds per step (CI), writes target/bench/BENCHMARKS.md
#   PERF=1 bench/run.sh     # also samples the service with `perf record` (cpu-clock) during the
#                           # last signup step and the login step: target/bench/run/*.perf.txt
#   SCHED=1 bench/run.sh    # also records scheduler latency (perf sched) for 5 s of each signup
#                           # step: target/bench/run/signup_*.sched.txt
#
# Needs: Docker (and the local Postgres image: scripts/lib.sh builds it), wrk (apt-get install
# wrk), python3. Everything runs in release mode on this machine, on loopback only.
set -euo pipefail
TIMEFORMAT='%U %S'
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

short=false
[ "${1:-}" = "--short" ] && short=true
if $short; then dur=2; hash_secs=2; levels="1 16"; else dur=15; hash_secs=10; levels="1 16 64 256"; fi
out=target/bench/run
report=BENCHMARKS.md
$short && report=target/bench/BENCHMARKS.md
rm -rf "$out" && mkdir -p "$out"

command -v wrk >/dev/null || apt_install wrk
ensure_pgbouncer
ensure_postgres_image
ulimit -n 65536 2>/dev/null || ulimit -n 4096

echo "== build (release)"
cargo build --release --quiet -p atomic-signup --bin atomic-signup --example hash_bound
cargo build --release --quiet -p gotrue-double
# The build directory: CARGO_TARGET_DIR when set, as cargo itself does.
release=${CARGO_TARGET_DIR:-target}/release
bin=$release/atomic-signup

# OWASP cost for the headline figures (the defaults); a cheap cost only to seed login users.
export ARGON2_MEMORY_KIB=19456 ARGON2_ITERATIONS=2 ARGON2_PARALLELISM=1

echo "== postgres (with pg_stat_statements)"
db=atomic-signup-bench-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  docker rm -f "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
docker run -d --name "$db" -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=postgres "$TEST_POSTGRES_IMAGE" \
  -c shared_preload_libraries=pg_stat_statements -c max_connections=200 \
  -c track_wal_io_timing=on >/dev/null
wait_for_postgres "$db"
sleep 1
port=$(docker port "$db" 5432/tcp | head -n 1 | sed 's/.*://')
psql_() { docker exec -i "$db" psql -qtA -v ON_ERROR_STOP=1 -U postgres "$@"; }
psql_ <tests/fixtures/supabase_auth.sql >/dev/null
psql_ -c "create extension if not exists pg_stat_statements" >/dev/null
# The service and the double reach Postgres at the container's own address on Docker's bridge,
# not through the published port: that path runs every packet through docker-proxy, a userland
# copy that cost ~20 % of the machine's CPU in the login step and is not part of any deployment.
db_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$db")
if [ -n "$db_ip" ] && timeout 2 bash -c "</dev/tcp/$db_ip/5432" 2>/dev/null; then
  db_host=$db_ip db_port=5432
else
  db_host=127.0.0.1 db_port=$port
fi
export DATABASE_URL="postgres://postgres:postgres@$db_host:$db_port/postgres"
echo "database at ${DATABASE_URL#*@}"
$bin migrate >/dev/null

echo "== hash bound (${hash_secs}s, all cores)"
"$release"/examples/hash_bound "$hash_secs" | tee "$out/hash_bound.json"

echo "== GoTrue double and the service"
# Free loopback ports for this run (no fixed ports: another run or service may hold them).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
svc_port=$(free_port); seed_port=$(free_port); double_port=$(free_port); metrics_port=$(free_port)
"$release"/gotrue-double "$double_port" >"$out/double.log" 2>&1 &
dbl=$!
pids+=($dbl)
# HTTP_MAX_CONNECTIONS_PER_IP=0: wrk opens up to 1,000 connections from one address.
export BIND_ADDR=127.0.0.1:$svc_port METRICS_BIND_ADDR=127.0.0.1:$metrics_port GOTRUE_URL=http://127.0.0.1:$double_port \
  SUPABASE_ANON_KEY=test-anon-key-0123456789 REQUIRE_EMAIL_CONFIRMATION=false \
  IDEMPOTENCY_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
  OUTBOX_POLL_INTERVAL_MS=3600000 LOG_FORMAT=json RUST_LOG=warn \
  RATE_LIMIT_SIGNUP_PER_MINUTE=0 RATE_LIMIT_LOGIN_PER_MINUTE=0 \
  HTTP_MAX_CONNECTIONS_PER_IP=0 \
  HASH_QUEUE_PER_CORE=512 # room for all 1,000 concurrent signups: memory with a full queue
$bin serve >"$out/service.log" 2>&1 &
svc=$!
pids+=($svc)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:$svc_port/readyz >/dev/null && break; sleep 0.1; done
curl -fs http://127.0.0.1:$svc_port/readyz >/dev/null || { cat "$out/service.log"; exit 1; }

metrics() { curl -fs http://127.0.0.1:$metrics_port/metrics; }
# With PERF=1: sample the service for $1 seconds into $out/$2.perf.txt (in the background).
profile() {
  [ "${PERF:-}" = 1 ] || return 0
  command -v perf >/dev/null || apt_install linux-perf
  ( perf record -q -e cpu-clock -F 499 -g -p "$svc" -o "$out/$2.perf.data" -- sleep "$1" >/dev/null 2>&1
    perf report -i "$out/$2.perf.data" --stdio --no-children --percent-limit 1.5 \
      --sort symbol 2>/dev/null | grep -v '^$' | head -n 80 >"$out/$2.perf.txt" ) &
}
# With SCHED=1: `perf sched record` on the whole machine for $1 seconds, summarised by
# `perf sched latency` (how long each task waited for a CPU after waking) into $out/$2.sched.txt.
sched_profile() {
  [ "${SCHED:-}" = 1 ] || return 0
  command -v perf >/dev/null || apt_install linux-perf
  ( perf sched record -a -q -o "$out/$2.sched.data" -- sleep "$1" >/dev/null 2>&1
    perf sched latency -i "$out/$2.sched.data" --sort max 2>/dev/null | head -n 60 >"$out/$2.sched.txt"
    rm -f "$out/$2.sched.data" ) &
}
# CPU accounting (jiffies): where the machine's CPU went during a step. Prints
# "busy argon2 service postgres double total": all busy CPU, the service's hashing threads, the whole
# service, every postgres process, the GoTrue double (the rest is wrk and the system).
jiffies() { { cat "$@" 2>/dev/null || true; } | awk '{s += $14 + $15} END {print s + 0}'; }
cpu() {
  local busy argon2 service postgres double total
  busy=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
  total=$(awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  # Processes and threads may end between listing and reading (a Postgres backend or autovacuum
  # worker exits): a file that is gone counts as nothing, it does not stop the run.
  argon2=$(for t in /proc/$svc/task/*; do grep -q '^argon2' "$t/comm" 2>/dev/null && echo "$t/stat"; done | xargs -r cat 2>/dev/null | awk '{s += $14 + $15} END {print s + 0}' || true)
  service=$(jiffies /proc/$svc/stat)
  postgres=$(for p in $(pgrep -x postgres); do echo /proc/$p/stat; done | xargs -r cat 2>/dev/null | awk '{s += $14 + $15} END {print s + 0}' || true)
  double=$(jiffies /proc/$dbl/stat)
  echo "$busy $argon2 $service $postgres $double $total"
}
statements() {
  psql_ -c "select coalesce(sum(calls),0) || ' ' || coalesce(sum(calls) filter (where query like '%create_user%'),0) \
            from pg_stat_statements where query not like '%pg_stat_statements%' and dbid = (select oid from pg_database where datname = 'postgres')"
}

# Inside Postgres, per step: the signup statement's executions, mean and max execution time (ms,
# without the commit), and the WAL syncs with their total time (ms): the commit's disk wait.
pgdiag() {
  psql_ -c "select coalesce(sum(calls),0) || ' ' || coalesce(sum(total_exec_time),0) || ' ' || coalesce(max(max_exec_time),0) \
            from pg_stat_statements where query like '%create_user%'"
  psql_ -c "select wal_sync || ' ' || wal_sync_time from pg_stat_wal"
}

echo "== signups"
for c in $levels; do
  threads=2; [ "$c" -lt 2 ] && threads=1
  psql_ -c "select pg_stat_statements_reset(), pg_stat_reset_shared('wal')" >/dev/null
  metrics >"$out/signup_$c.before.prom"
  statements >"$out/signup_$c.before.stmts"
  cpu >"$out/signup_$c.before.cpu"
  python3 bench/procs.py >"$out/signup_$c.before.procs"
  profile "$dur" "signup_$c"
  sched_profile "$(( dur > 5 ? 5 : dur ))" "signup_$c"
  # wrk's own CPU time (user, system seconds) from bash's `time`: it has exited by the end of
  # the step, so the process snapshots cannot see it.
  { time BENCH_PREFIX="c$c-$$" wrk -t"$threads" -c"$c" -d"${dur}s" --timeout 30s -s bench/signup.lua \
    http://127.0.0.1:$svc_port/api/auth/signup >"$out/signup_$c.wrk"; } 2>"$out/signup_$c.wrkcpu"
  cat "$out/signup_$c.wrk"
  metrics >"$out/signup_$c.after.prom"
  statements >"$out/signup_$c.after.stmts"
  cpu >"$out/signup_$c.after.cpu"
  python3 bench/procs.py >"$out/signup_$c.after.procs"
  pgdiag | tr '\n' ' ' >"$out/signup_$c.pg"
done

echo "== connection modes (c=16): direct, through PgBouncer in session mode, in transaction mode"
# The cost of DATABASE_POOL_MODE=transaction: the same signups through PgBouncer (10 server
# connections, as many as the service's pool) in session mode (the pooler's own cost) and in
# transaction mode (plus per-transaction SET LOCAL, savepoint and DEALLOCATE ALL).
pgb=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
pgb_dir=$(mktemp -d)
chmod 777 "$pgb_dir"
start_pgbouncer() { # name pool_mode port
  cat >"$pgb_dir/$1.ini" <<INI
[databases]
* = host=$db_host port=$db_port user=postgres password=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $3
unix_socket_dir =
auth_type = any
pool_mode = $2
default_pool_size = 10
max_client_conn = 200
; session mode: the service's startup parameters are dropped (PgBouncer 1.18 refuses them)
ignore_startup_parameters = extra_float_digits, options
logfile = $pgb_dir/$1.log
pidfile = $pgb_dir/$1.pid
INI
  chmod 644 "$pgb_dir/$1.ini"
  # PgBouncer refuses to run as root: -u drops to nobody.
  "$pgb" -u nobody "$pgb_dir/$1.ini" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do timeout 1 bash -c "</dev/tcp/127.0.0.1/$3" 2>/dev/null && return 0; sleep 0.1; done
  cat "$pgb_dir/$1.log" >&2
  return 1
}
pgb_session_port=$(free_port); pgb_tx_port=$(free_port)
start_pgbouncer session session "$pgb_session_port"
start_pgbouncer transaction transaction "$pgb_tx_port"
mode_step() { # name database_url pool_mode
  local sport mport p
  sport=$(free_port); mport=$(free_port)
  DATABASE_URL=$2 DATABASE_POOL_MODE=$3 BIND_ADDR=127.0.0.1:$sport METRICS_BIND_ADDR=127.0.0.1:$mport \
    $bin serve >"$out/mode_$1.log" 2>&1 &
  p=$!
  pids+=($p)
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:$sport/readyz >/dev/null && break; sleep 0.1; done
  curl -fs http://127.0.0.1:$sport/readyz >/dev/null || { cat "$out/mode_$1.log"; exit 1; }
  psql_ -c "select pg_stat_statements_reset()" >/dev/null
  curl -fs http://127.0.0.1:$mport/metrics >"$out/mode_$1.before.prom"
  statements >"$out/mode_$1.before.stmts"
  BENCH_PREFIX="m$1-$$" wrk -t2 -c16 -d"${dur}s" --timeout 30s -s bench/signup.lua \
    http://127.0.0.1:$sport/api/auth/signup >"$out/mode_$1.wrk"
  curl -fs http://127.0.0.1:$mport/metrics >"$out/mode_$1.after.prom"
  statements >"$out/mode_$1.after.stmts"
  kill "$p"
  wait "$p" 2>/dev/null || true
  grep -E "Requests/sec" "$out/mode_$1.wrk" | sed "s/^/$1: /"
}
mode_step direct "$DATABASE_URL" session
mode_step pgbouncer_session "postgres://postgres:postgres@127.0.0.1:$pgb_session_port/postgres" session
mode_step pgbouncer_transaction "postgres://postgres:postgres@127.0.0.1:$pgb_tx_port/postgres" transaction

echo "== profile fields (c=16): the default profile against the example's five typed fields"
# One fresh service each, alternating default, five, default, five, so that the machine's drift
# falls on both; the example's columns are added and migrated first (the default profile still
# fits them: each new NOT NULL column has a default).
psql_ <examples/profile-schema.example.sql >/dev/null
PROFILE_SCHEMA_PATH=examples/profile-schema.example.json $bin migrate >/dev/null
# One fresh service for one step of signups at c=16: service_step <file> <BENCH_PROFILE> [VAR=value …]
# (the variables are the service's environment); writes $out/<file>.wrk and prints its rate.
step_no=0
service_step() {
  local file=$1 bench_profile=$2 sport p
  shift 2
  # Short: the example profile's username is u<prefix><thread>_<counter>, at most 20 characters.
  step_no=$((step_no + 1))
  sport=$(free_port)
  env "$@" BIND_ADDR=127.0.0.1:$sport METRICS_BIND_ADDR= $bin serve >"$out/$file.log" 2>&1 &
  p=$!
  pids+=($p)
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:$sport/readyz >/dev/null && break; sleep 0.1; done
  curl -fs http://127.0.0.1:$sport/readyz >/dev/null || { cat "$out/$file.log"; exit 1; }
  BENCH_PREFIX="s$step_no$$" BENCH_PROFILE=$bench_profile wrk -t2 -c16 -d"${dur}s" --timeout 30s -s bench/signup.lua \
    http://127.0.0.1:$sport/api/auth/signup >"$out/$file.wrk"
  kill "$p"
  wait "$p" 2>/dev/null || true
  grep -E "Requests/sec|Non-2xx" "$out/$file.wrk" | sed "s/^/$file: /"
}
profile_step() { # name schema_path BENCH_PROFILE
  service_step "profile_$1" "$3" PROFILE_SCHEMA_PATH="$2"
}
profile_step d1 "" default
profile_step f1 examples/profile-schema.example.json example
profile_step d2 "" default
profile_step f2 examples/profile-schema.example.json example

echo "== traces (c=16): off, and on with the collector down (nothing listens at its port), over HTTP and gRPC"
# Alternating off, down (HTTP), down (gRPC), twice, like the profile step. With traces on, each
# signup also runs as an explicit transaction (the outbox rows keep its traceparent) and its
# spans go to the export queue, whose exports fail at once here (gRPC retries a few times first,
# on the exporter's thread).
collector_down=$(free_port)
for round in 1 2; do
  service_step trace_off$round default
  service_step trace_down$round default OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$collector_down
  service_step trace_grpc_down$round default OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$collector_down \
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc
done

echo "== hash bound again (${hash_secs}s, service idle): the machine's drift over the run"
"$release"/examples/hash_bound "$hash_secs" | tee "$out/hash_bound_after.json"

echo "== 1,000 concurrent signups (peak RSS)"
metrics >"$out/signup_1000.before.prom"
BENCH_PREFIX="c1000-$$" wrk -t2 -c1000 -d"$( $short && echo 3 || echo 10 )s" --timeout 60s -s bench/signup.lua \
  http://127.0.0.1:$svc_port/api/auth/signup | tee "$out/signup_1000.wrk"
metrics >"$out/signup_1000.after.prom"
grep VmHWM /proc/$svc/status | awk '{print $2}' >"$out/rss_kib"

echo "== logins (c=64): through the service, and at the GoTrue double directly"
users=200
# Seed confirmed users with a cheap hash through a second instance (the login path is measured,
# not argon2).
ARGON2_MEMORY_KIB=64 ARGON2_ITERATIONS=1 BIND_ADDR=127.0.0.1:$seed_port METRICS_BIND_ADDR= $bin serve >"$out/seed.log" 2>&1 &
seed=$!
pids+=($seed)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:$seed_port/healthz >/dev/null && break; sleep 0.1; done
for i in $(seq 1 $users); do
  curl -fs -o /dev/null http://127.0.0.1:$seed_port/api/auth/signup -H 'content-type: application/json' \
    -d "{\"name\":\"Login $i\",\"email\":\"l$i@bench.example.com\",\"password\":\"correct horse battery\",\"role\":\"Brand\"}"
done
kill $seed
for c in 64 1; do
  threads=2; [ "$c" -lt 2 ] && threads=1
  cpu >"$out/login_$c.before.cpu"
  python3 bench/procs.py >"$out/login_$c.before.procs"
  [ "$c" = 64 ] && profile "$dur" "login_64"
  { time LOGIN_USERS=$users wrk -t$threads -c$c -d"${dur}s" -s bench/login.lua http://127.0.0.1:$svc_port \
    >"$out/login_service_$c.wrk"; } 2>"$out/login_$c.wrkcpu"
  cat "$out/login_service_$c.wrk"
  cpu >"$out/login_$c.after.cpu"
  python3 bench/procs.py >"$out/login_$c.after.procs"
  LOGIN_USERS=$users LOGIN_PATH='/token?grant_type=password' APIKEY=test-anon-key-0123456789 \
    wrk -t$threads -c$c -d"${dur}s" -s bench/login.lua http://127.0.0.1:$double_port | tee "$out/login_double_$c.wrk"
done

python3 bench/report.py "$out" "$levels" "$report"
