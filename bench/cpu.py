#!/usr/bin/env python3
"""CPU time by process group, from /proc: where a run's CPU goes.

    bench/cpu.py snapshot OUT.json NAME=PID ...   # each PID and its children (PostgreSQL's
                                                  # backends are the postmaster's), and the
                                                  # caller's caller as "loadgen" (run it from
                                                  # loadgen's --on-start / --on-stop)
    bench/cpu.py delta BEFORE.json AFTER.json UPDATES   # a JSON line: seconds and ms per update
"""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(ppid, utime + stime in ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def ticks_of(root, table):
    """CPU ticks of ROOT and its children (one level, as PostgreSQL's backends)."""
    own = table.get(root)
    total = own[1] if own else 0
    return total + sum(t for pid, (ppid, t) in table.items() if ppid == root)


def loadgen_ancestor():
    """The loadgen that runs this hook (through a shell or not), or 0."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "loadgen":
                    return pid
        except OSError:
            return 0
        pid = stat(pid)[0]
    return 0


def snapshot(out, pairs):
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = stat(int(entry))
            if s:
                table[int(entry)] = s
    groups = {"loadgen": table.get(loadgen_ancestor(), (0, 0))[1]}
    for pair in pairs:
        name, pid = pair.split("=", 1)
        groups[name] = ticks_of(int(pid), table)
    with open(out, "w") as f:
        json.dump(groups, f)


def delta(before, after, updates):
    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)
    updates = max(int(updates), 1)
    seconds = {k: (a[k] - b.get(k, 0)) / TICK for k in a}
    print(json.dumps({
        "cpu_s": seconds,
        "cpu_ms_per_update": {k: v * 1000 / updates for k, v in seconds.items()},
        "total_ms_per_update": sum(seconds.values()) * 1000 / updates,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        snapshot(sys.argv[2], sys.argv[3:])
    else:
        delta(sys.argv[2], sys.argv[3], sys.argv[4])
