#!/usr/bin/env python3
"""CPU time per thread of a running process, by thread name, until it exits.

    benches/threads.py PID

Reads /proc/PID/task/*/stat every 50 ms and keeps each thread's last user and system time (a
thread that ends keeps what was read last, up to 50 ms short, and one that ends before the
first reading is missing: meant for runs of seconds); when PID exits, prints one line
per thread name with its trailing number dropped (mixer-0 and mixer-1 are "mixer"), most CPU
first: threads, user s, system s, and when the last of them was seen (seconds from the first
reading): mixers end once the capture is read, finishers once the last recording is entered,
so the gap between the two is the finishing left when the capture is done. The process's main
thread carries the program's name (capture, in `callvault replay`)."""
import collections
import os
import re
import sys
import time

pid = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
last = {}
seen = {}
start = time.monotonic()
while os.path.exists(f"/proc/{pid}/stat"):
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        break
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        last[tid] = (name, int(fields[11]), int(fields[12]))
        seen[tid] = time.monotonic() - start
    time.sleep(0.05)
groups = collections.defaultdict(lambda: [0, 0, 0, 0.0])
for tid, (name, user, system) in last.items():
    g = groups[re.sub(r"[-_]?\d+$", "", name)]
    g[0] += 1
    g[1] += user
    g[2] += system
    g[3] = max(g[3], seen[tid])
for name, (n, user, system, end) in sorted(groups.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
    print(f"  {name:<18} threads {n:>3}  user {user / hz:7.2f} s  system {system / hz:7.2f} s  last seen {end:6.2f} s")
