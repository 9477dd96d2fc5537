#!/usr/bin/env python3
"""Where the machine's CPU went, from a system-wide `perf record -a -e cpu-clock` (no call
graphs): the share of samples of each process (load generator, aggregator, PostgreSQL, Redis,
idle, the rest) split into its own code, libc and the kernel.

    perf script -F pid,comm,ip,dso -i perf.data | bench/perf_split.py AGGREGATOR_PID
"""
import collections
import re
import sys

LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+[0-9a-f]+\s+\((.*)\)\s*$")


def dso_class(dso):
    if "kernel" in dso or dso.startswith("["):
        return "kernel"
    if "libc.so" in dso:
        return "libc"
    return "own code"


def main(aggregator):
    samples = []
    loadgen = set()
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, dso = m.group(1), int(m.group(2)), m.group(3)
        if comm == "loadgen":
            loadgen.add(pid)
        samples.append((comm, pid, dso))
    counts = collections.Counter()
    for comm, pid, dso in samples:
        if pid == 0:
            group = "idle"
        elif pid == aggregator:
            group = "aggregator"
        elif pid in loadgen:
            group = "loadgen"
        elif comm == "postgres":
            group = "postgres"
        elif comm.startswith("redis"):
            group = "redis"
        else:
            group = "other"
        counts[(group, "" if group == "idle" else dso_class(dso))] += 1
    total = max(sum(counts.values()), 1)
    classes = ["own code", "libc", "kernel"]
    print(f"{total} samples\n")
    print("| process | " + " | ".join(classes) + " | all |")
    print("| --- | " + " | ".join("---:" for _ in classes) + " | ---: |")
    for group in ["loadgen", "aggregator", "postgres", "redis", "other", "idle"]:
        cells = [counts[(group, c)] * 100 / total for c in classes]
        whole = sum(v for (g, _), v in counts.items() if g == group) * 100 / total
        shown = " | ".join(f"{c:.1f}%" for c in cells) if group != "idle" else " |  | "
        print(f"| {group} | {shown} | {whole:.1f}% |")


if __name__ == "__main__":
    main(int(sys.argv[1]))
