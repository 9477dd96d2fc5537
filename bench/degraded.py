#!/usr/bin/env python3
"""The table of scripts/bench-degraded: applied/s per board size and Redis state.

    bench/degraded.py DIR   # the deg-*.json of one run -> markdown on stdout
"""
import glob
import json
import os
import statistics
import sys

STATES = ["healthy", "stopped", "rebuilding"]


def main(folder):
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "deg-*.json")))]
    sizes = sorted({r["board_entries"] for r in runs})
    print("| board entries | Redis | applied/s (rounds) | median | vs healthy | p99 ms | exactly once | rebuild s |")
    print("| ---: | --- | --- | ---: | ---: | ---: | --- | ---: |")
    for size in sizes:
        healthy = None
        for state in STATES:
            rs = [r for r in runs if r["board_entries"] == size and r["redis_state"] == state]
            if not rs:
                continue
            rates = [r["applied_per_s"] for r in rs]
            median = statistics.median(rates)
            if state == "healthy":
                healthy = median
            ratio = f"{median / healthy:.2f}" if healthy else ""
            p99 = statistics.median(r["latency"]["p99_ms"] for r in rs)
            once = "yes" if all(r["exactly_once"]["ok"] for r in rs) else "NO"
            builds = [r["rebuild_seconds"] for r in rs if r.get("rebuild_seconds")]
            rebuild = f"{statistics.median(builds):.1f}" if builds else ""
            listed = ", ".join(f"{x:,.0f}" for x in rates)
            print(f"| {size:,} | {state} | {listed} | {median:,.0f} | {ratio} | {p99:,.0f} | {once} | {rebuild} |")


    print()
    print("| board entries | aggregator RSS after start-up (MiB) |")
    print("| ---: | ---: |")
    for size in sizes:
        path = os.path.join(folder, f"rss-kib-{size}.txt")
        if os.path.exists(path):
            print(f"| {size:,} | {int(open(path).read()) / 1024:,.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
