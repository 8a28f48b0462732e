#!/usr/bin/env python3
"""Turns the raw files of bench/run.sh into one table (stdout) and BENCHMARKS.md."""
import datetime
import json
import os
import re
import sys

out, levels, report = sys.argv[1], sys.argv[2].split(), sys.argv[3]


def wrk(name):
    text = open(os.path.join(out, name)).read()
    line = next(l for l in text.splitlines() if l.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def series(name, metric, label):
    """{label value: sample} of one labelled metric in a saved /metrics scrape."""
    pat = re.compile(r'^' + metric + r'\{' + label + r'="([^"]+)"\} (\S+)$')
    found = {}
    for line in open(os.path.join(out, name)):
        m = pat.match(line.strip())
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def buckets(name):
    """Cumulative bucket counts of the transaction histogram: {le: count}."""
    return series(name, "atomic_signup_signup_transaction_duration_seconds_bucket", "le")


def percentile(before, after, q):
    """q-quantile (seconds) of the observations between two scrapes, interpolated in buckets."""
    les = sorted((float("inf") if k == "+Inf" else float(k), k) for k in after)
    delta = [(le, after[k] - before.get(k, 0.0)) for le, k in les]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in delta:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return None


def scalar(name, metric):
    """An unlabelled sample (e.g. a histogram's _sum or _count) of a saved /metrics scrape."""
    for line in open(os.path.join(out, name)):
        parts = line.split()
        if len(parts) == 2 and parts[0] == metric:
            return float(parts[1])
    return 0.0


def tx_mean_ms(before, after):
    """Mean of the service's own transaction timing between two scrapes (ms)."""
    m = "atomic_signup_signup_transaction_duration_seconds"
    n = scalar(after, m + "_count") - scalar(before, m + "_count")
    s = scalar(after, m + "_sum") - scalar(before, m + "_sum")
    return s / n * 1000 if n else 0.0


def pg(step):
    """Inside Postgres during a step: (mean exec ms, max exec ms, mean WAL sync ms, syncs)."""
    calls, total, peak, syncs, sync_ms = (float(x) for x in open(os.path.join(out, f"{step}.pg")).read().split())
    return (total / calls if calls else 0.0, peak, sync_ms / syncs if syncs else 0.0, syncs)


def stmts(name):
    total, create = open(os.path.join(out, name)).read().split()
    return float(total), float(create)


def cpu(step):
    """Shares of the machine's CPU during a step: busy, hashing, rest of service, postgres, double."""
    b = [float(x) for x in open(os.path.join(out, f"{step}.before.cpu")).read().split()]
    a = [float(x) for x in open(os.path.join(out, f"{step}.after.cpu")).read().split()]
    d = [y - x for x, y in zip(b, a)]
    busy, argon2, service, postgres, double, total = d
    return {"busy": busy, "argon2": argon2, "service_other": service - argon2,
            "postgres": postgres, "double": double, "rest": busy - service - postgres - double,
            "total": total}


OURS = {"postgres", "atomic-signup", "gotrue_double"}


def rest_of(step, busy):
    """The biggest consumers of the step's CPU outside the service, Postgres and the double:
    wrk (its own CPU time) and every other process (snapshot difference); shares of busy CPU."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        user, system = open(os.path.join(out, f"{step}.wrkcpu")).read().split()[-2:]
        before = json.load(open(os.path.join(out, f"{step}.before.procs")))
        after = json.load(open(os.path.join(out, f"{step}.after.procs")))
    except (FileNotFoundError, ValueError):
        return []
    used = {"wrk": (float(user) + float(system)) * tick}
    for pid, (name, jiffies) in after.items():
        if name in OURS:
            continue
        delta = jiffies - before.get(pid, [name, 0])[1]
        # kworker/1:1H-kblockd and kworker/0:2-events are one kind of work each
        key = re.sub(r"/\d+:\d+", "", name) if name.startswith("kworker") else name
        used[key] = used.get(key, 0) + delta
    top = sorted(((j, n) for n, j in used.items() if j > 0), reverse=True)[:5]
    return [f"{n} {j / (busy or 1):.0%}" for j, n in top]


hash_bound = json.load(open(os.path.join(out, "hash_bound.json")))
bound_after = json.load(open(os.path.join(out, "hash_bound_after.json")))["hashes_per_second"]
# The machine's speed drifts over a run (a VM): the bound is measured before and after the signup
# steps, and the ratios use their mean.
bound = (hash_bound["hashes_per_second"] + bound_after) / 2
rows = []
for c in levels:
    r = wrk(f"signup_{c}.wrk")
    b0, b1 = buckets(f"signup_{c}.before.prom"), buckets(f"signup_{c}.after.prom")
    t0, k0 = stmts(f"signup_{c}.before.stmts")
    t1, k1 = stmts(f"signup_{c}.after.stmts")
    created = r["requests"] - r["non2xx"]
    rows.append({
        "c": int(c), "rps": r["rps"], "p50": r["p50_us"] / 1000, "p95": r["p95_us"] / 1000,
        "p99": r["p99_us"] / 1000, "non2xx": r["non2xx"], "sock": r["socket_errors"],
        "ratio": r["rps"] / bound,
        "tx50": (percentile(b0, b1, 0.50) or 0) * 1000, "tx99": (percentile(b0, b1, 0.99) or 0) * 1000,
        "stmts": (t1 - t0) / created if created else 0, "creates": k1 - k0, "created": created,
        "tx_mean": tx_mean_ms(f"signup_{c}.before.prom", f"signup_{c}.after.prom"),
        "pg": pg(f"signup_{c}"), "cpu": cpu(f"signup_{c}"),
    })
big = wrk("signup_1000.wrk")


def outcomes(name):
    return series(name, "atomic_signup_signup_outcomes_total", "outcome")


o0, o1 = outcomes("signup_1000.before.prom"), outcomes("signup_1000.after.prom")
big_created = o1.get("created", 0) - o0.get("created", 0)
big_overloaded = o1.get("overloaded", 0) - o0.get("overloaded", 0)
rss_mib = int(open(os.path.join(out, "rss_kib")).read().strip()) / 1024
ls, ld = wrk("login_service_64.wrk"), wrk("login_double_64.wrk")
overhead = (ls["p50_us"] - ld["p50_us"]) / 1000
ls1, ld1 = wrk("login_service_1.wrk"), wrk("login_double_1.wrk")
overhead1 = (ls1["p50_us"] - ld1["p50_us"]) / 1000

lines = []
lines.append(f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores; argon2id "
             f"m={hash_bound['m']} t={hash_bound['t']} p={hash_bound['p']}; release build; "
             f"Postgres, wrk, the service and the GoTrue double all on this one machine.")
lines.append("")
lines.append(f"**Hash bound**: {bound:.1f} argon2id hashes/s on all cores, the mean of "
             f"{hash_bound['hashes_per_second']:.1f} before and {bound_after:.1f} after the signup steps "
             f"(measured in the same run, the service idle).")
lines.append("")
lines.append("| concurrency | signups/s | p50 ms | p95 ms | p99 ms | non-2xx | socket errors | ÷ hash bound | transaction p50 ms | transaction p99 ms | statements per signup |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    lines.append(f"| {r['c']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
                 f"{r['non2xx']} | {r['sock']} | {r['ratio']:.2f} | {r['tx50']:.2f} | {r['tx99']:.2f} | {r['stmts']:.2f} |")
lines.append("")
lines.append("What the throughput ratio and the transaction time are made of, per step: the hashing "
             "threads' share of all busy CPU, and the ratio their CPU time allows (their CPU time ÷ "
             "all the machine's CPU time: the bound uses all of it for hashing); the service's own mean transaction time against Postgres' "
             "mean and max execution time of the statement (without the commit) and its mean WAL "
             "sync (the commit's wait for the disk):")
lines.append("")
lines.append("| concurrency | hashing share of CPU | ratio that share allows | ratio measured | transaction mean ms (service) | execution mean ms (Postgres) | execution max ms | WAL sync mean ms |")
lines.append("|---|---|---|---|---|---|---|---|")
for r in rows:
    u = r["cpu"]
    share = u["argon2"] / (u["busy"] or 1)
    capacity = u["argon2"] / (u["total"] or 1)
    exec_mean, exec_max, sync_mean, _ = r["pg"]
    lines.append(f"| {r['c']} | {share:.0%} | {capacity:.2f} | {r['ratio']:.2f} | {r['tx_mean']:.2f} | "
                 f"{exec_mean:.2f} | {exec_max:.1f} | {sync_mean:.2f} |")
lines.append("")
lines.append(f"- 1,000 concurrent signups: {big_created:.0f} created ({big_created / (big['duration_us'] / 1e6):.1f}/s), "
             f"{big_overloaded:.0f} answered 503 `overloaded` at once (hash queue full, by design), "
             f"{big['non2xx'] - big_overloaded:.0f} other non-2xx, {big['socket_errors']} socket errors, "
             f"p99 {big['p99_us']/1000:.0f} ms; **peak RSS of the service {rss_mib:.1f} MiB** "
             f"(VmHWM over the whole run).")
lines.append(f"- Login at concurrency 64: through the service p50 {ls['p50_us']/1000:.2f} ms "
             f"({ls['rps']:.0f}/s, {ls['non2xx']} non-2xx); the GoTrue double directly p50 "
             f"{ld['p50_us']/1000:.2f} ms ({ld['rps']:.0f}/s); **login overhead {overhead:.2f} ms at p50**. "
             f"At concurrency 1 (no CPU contention): {ls1['p50_us']/1000:.2f} ms vs {ld1['p50_us']/1000:.2f} ms, "
             f"overhead {overhead1:.2f} ms.")
lines.append("")
lines.append("Where the CPU went (share of all busy CPU time during the step, from /proc: the service's "
             "`argon2-*` threads, the rest of the service, every postgres process, the GoTrue double, "
             "and the rest — mostly wrk):")
lines.append("")
lines.append("| step | hashing | service (other) | postgres | GoTrue double | rest (wrk, system) |")
lines.append("|---|---|---|---|---|---|")
steps = [(f"signup c={c}", f"signup_{c}") for c in levels] + [("login c=64", "login_64")]
for label, step in steps:
    try:
        u = cpu(step)
    except (FileNotFoundError, ValueError):
        continue
    busy = u["busy"] or 1
    lines.append(f"| {label} | {u['argon2']/busy:.0%} | {u['service_other']/busy:.0%} | "
                 f"{u['postgres']/busy:.0%} | {u['double']/busy:.0%} | {u['rest']/busy:.0%} |")
lines.append("")
lines.append("The rest, by process (share of all busy CPU; kernel threads included):")
lines.append("")
for label, step in steps:
    try:
        u = cpu(step)
    except (FileNotFoundError, ValueError):
        continue
    top = rest_of(step, u["busy"])
    if top:
        lines.append(f"- {label}: " + ", ".join(top))
lines.append("")
modes = [("direct", "direct, `session`"), ("pgbouncer_session", "PgBouncer session mode, `session`"),
         ("pgbouncer_transaction", "PgBouncer transaction mode, `transaction`")]
if all(os.path.exists(os.path.join(out, f"mode_{m}.wrk")) for m, _ in modes):
    lines.append("**Connection modes** (c=16, one fresh service each; `DATABASE_POOL_MODE` after the comma): "
                 "the cost of a transaction pooler, and of the service's transaction mode "
                 "(each transaction sets `statement_timeout` with `SET LOCAL`, takes a savepoint and ends "
                 "with `DEALLOCATE ALL`).")
    lines.append("")
    lines.append("| path | signups/s | ÷ direct | p50 ms | transaction mean ms | transaction p50 ms | statements per signup |")
    lines.append("|---|---|---|---|---|---|---|")
    base = None
    for m, label in modes:
        r = wrk(f"mode_{m}.wrk")
        b0, b1 = buckets(f"mode_{m}.before.prom"), buckets(f"mode_{m}.after.prom")
        t0, _ = stmts(f"mode_{m}.before.stmts")
        t1, _ = stmts(f"mode_{m}.after.stmts")
        created = r["requests"] - r["non2xx"]
        base = base or r["rps"]
        lines.append(f"| {label} | {r['rps']:.1f} | {r['rps'] / base:.2f} | {r['p50_us'] / 1000:.1f} | "
                     f"{tx_mean_ms(f'mode_{m}.before.prom', f'mode_{m}.after.prom'):.2f} | "
                     f"{(percentile(b0, b1, 0.50) or 0) * 1000:.2f} | "
                     f"{(t1 - t0) / created if created else 0:.2f} |")
    lines.append("")
def alternating(title, column, base, base_files, *others, bound=""):
    """A table of variants measured alternately (one fresh service per step): the signups
    committed per second of each, summed over its steps, and each other's ratio to the base.
    `others`: a name, then its files, for each variant but the base."""
    variants = list(zip(others[0::2], others[1::2]))
    files = base_files + [f for _, names in variants for f in names]
    if not all(os.path.exists(os.path.join(out, f"{f}.wrk")) for f in files):
        return
    r = {f: wrk(f"{f}.wrk") for f in files}
    def rate(names):
        created = sum(r[f]["requests"] - r[f]["non2xx"] for f in names)
        return created / sum(r[f]["duration_us"] / 1e6 for f in names)
    base_rate = rate(base_files)
    refused = sum(r[f]["non2xx"] for f in files)
    lines.append(title)
    lines.append("")
    lines.append(f"| {column} | signups/s | ÷ {base} |")
    lines.append("|---|---|---|")
    lines.append(f"| {base} | {base_rate:.1f} | 1.00 |")
    for other, names in variants:
        other_rate = rate(names)
        lines.append(f"| {other} | {other_rate:.1f} | {other_rate / base_rate:.3f} |")
    lines.append("")
    lines.append(f"- {bound}Answers other than 201: {refused}.")
    lines.append("")
alternating("**Profile fields** (c=16, one fresh service per step, default and five fields "
            "alternating twice): the default profile (`name`) against "
            "`examples/profile-schema.example.json` (five typed fields more, validated and "
            "written by the same statement).",
            "profile", "default", ["profile_d1", "profile_d2"],
            "five typed fields", ["profile_f1", "profile_f2"],
            bound="The issue's bound: within 5 % of the default (÷ default ≥ 0.95). ")
alternating("**Traces** (c=16, one fresh service per step, off and on over each transport "
            "alternating twice): OpenTelemetry off (no endpoint: no exporter) against on with "
            "the collector down (nothing listens at `OTEL_EXPORTER_OTLP_ENDPOINT`), over "
            "HTTP/protobuf and over gRPC.",
            "traces", "off", ["trace_off1", "trace_off2"],
            "on, collector down (HTTP)", ["trace_down1", "trace_down2"],
            "on, collector down (gRPC)", ["trace_grpc_down1", "trace_grpc_down2"])
lines.append("- Transaction percentiles come from the service's own histogram "
             "(`atomic_signup_signup_transaction_duration_seconds`, interpolated within buckets "
             "0.5/1/1.5/2/3/4/5/7.5/10 ms …); statements per signup from `pg_stat_statements` "
             "(top-level statements executed ÷ signups committed).")
table = "\n".join(lines)
print(table)

if os.path.exists(report):
    old = open(report).read()
    marker_start, marker_end = "<!-- results:start -->", "<!-- results:end -->"
    if marker_start in old and marker_end in old:
        head, rest = old.split(marker_start, 1)
        _, tail = rest.split(marker_end, 1)
        open(report, "w").write(f"{head}{marker_start}\n{table}\n{marker_end}{tail}")
        sys.exit(0)
open(report, "w").write(f"# Benchmarks\n\n<!-- results:start -->\n{table}\n<!-- results:end -->\n")
