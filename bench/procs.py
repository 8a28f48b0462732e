#!/usr/bin/env python3
"""Prints every process's CPU time so far as JSON {pid: [name, jiffies]} (user + system, from
/proc/<pid>/stat): two snapshots around a benchmark step tell where the machine's CPU went."""
import json
import os

procs = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue  # gone meanwhile
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    procs[pid] = [name, int(fields[11]) + int(fields[12])]  # utime, stime
print(json.dumps(procs))
