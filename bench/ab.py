#!/usr/bin/env python3
"""The report of scripts/ab-aggregator: applied/s of builds A and B per level, round by round,
with the medians, B/A, each process's CPU per update, the batches' serial path by phase, and
callgrind's instructions per update.

    bench/ab.py DIR BIN_A BIN_B [POSTGRES_LOCALE]
"""
import json
import pathlib
import re
import statistics
import sys

from batches import SERIAL


def load(path):
    with open(path) as f:
        return json.load(f)


def runs(out, side, flight):
    """[(round, report, cpu)] of SIDE at FLIGHT (N in flight, or rN offered a second), by round."""
    found = []
    for p in out.glob(f"{side}-{flight}-*.json"):
        m = re.fullmatch(rf"{side}-{flight}-(\d+)\.json", p.name)
        if m:
            cpu = p.with_name(p.stem + "-cpu.json")
            found.append((int(m[1]), load(p), load(cpu) if cpu.exists() else None))
    return sorted(found, key=lambda r: r[0])


def label(level):
    return f"{level[1:]}/s offered" if level.startswith("r") else f"{level} in flight"


def fanout(out, levels):
    """The sN levels: N SSE clients streaming from each build."""
    for level in levels:
        print(f"{level[1:]} SSE clients, 10 updates:\n")
        print("| round | build | RSS before KiB | KiB per client | p50 ms | p99 ms | CPU µs/delivery | missed final |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for side in ("a", "b"):
            for rnd, j, _ in runs(out, side, level):
                print(f"| {rnd} | {side.upper()} | {j['server_rss_kib_before']} | {j['server_bytes_per_client'] / 1024:.1f} "
                      f"| {j['delivery']['p50_ms']:.1f} | {j['delivery']['p99_ms']:.1f} "
                      f"| {j.get('server_cpu_us_per_delivery') or 0:.1f} | {j['missed_final']} |")


def serial_path(out, levels):
    """Per level and build: the serial path's µs per update by phase, medians over the rounds."""
    rows = []
    for flight in levels:
        for side in ("a", "b"):
            found = [load(p) for p in sorted(out.glob(f"{side}-{flight}-*-batches.json"))]
            if not found:
                continue
            per = {ph: statistics.median(1000 * r["phases_ms"].get(ph, 0) / r["mean_size"] for r in found)
                   for ph in SERIAL}
            size = statistics.median(r["mean_size"] for r in found)
            rows.append((flight, side, size, per))
    if not rows:
        return
    print("The batches' serial path, µs per update (medians over the rounds; `bench/batches.py`):\n")
    print("| load | build | batch size | " + " | ".join(SERIAL) + " | total (sum of the medians) |")
    print("| ---: | --- | ---: | " + " | ".join("---:" for _ in SERIAL) + " | ---: |")
    for flight, side, size, per in rows:
        cells = " | ".join(f"{per[ph]:.1f}" for ph in SERIAL)
        print(f"| {label(flight)} | {side.upper()} | {size:.0f} | {cells} | {sum(per.values()):.1f} |")
    print()


def cpu_cell(cpu):
    if not cpu:
        return ""
    per = cpu["cpu_ms_per_update"]
    return " · ".join(f"{k} {per[k] * 1000:.0f}" for k in ("aggregator", "postgres", "redis", "loadgen") if k in per)


def main():
    out, bin_a, bin_b = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    print(f"A: `{bin_a}`  \nB: `{bin_b}`")
    if len(sys.argv) > 4:
        print(f"PostgreSQL's locale: `{sys.argv[4]}`")
    print()
    medians = {}
    found = {p.name.split("-")[1] for p in out.glob("a-*-*.json")
             if not p.name.endswith("-cpu.json") and p.name.split("-")[1] != "callgrind"}
    levels = sorted((l for l in found if not l.startswith("s")),
                    key=lambda l: (l.startswith("r"), int(l.lstrip("r"))))
    if levels:
        print("| load | round | A applied/s | B applied/s | A p99 ms | B p99 ms | A CPU µs/update | B CPU µs/update | exactly once |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for flight in levels:
        a, b = runs(out, "a", flight), runs(out, "b", flight)
        for (ra, ja, ca), (_, jb, cb) in zip(a, b):
            once = all((j.get("exactly_once") or {}).get("ok") for j in (ja, jb))
            print(f"| {label(flight)} | {ra} | {ja['applied_per_s']:.0f} | {jb['applied_per_s']:.0f} "
                  f"| {ja['latency']['p99_ms']:.1f} | {jb['latency']['p99_ms']:.1f} "
                  f"| {cpu_cell(ca)} | {cpu_cell(cb)} | {'yes' if once else 'NO'} |")
        if a and b:
            medians[flight] = tuple(
                (statistics.median(j["applied_per_s"] for _, j, _ in side),
                 statistics.median(j["latency"]["p99_ms"] for _, j, _ in side)) for side in (a, b))
    if levels:
        print()
    serial_path(out, levels)
    fanout(out, sorted(l for l in found if l.startswith("s")))
    print()
    for flight, ((ma, pa), (mb, pb)) in medians.items():
        print(f"- {label(flight)}: medians A {ma:.0f}/s (p99 {pa:.1f} ms), B {mb:.0f}/s (p99 {pb:.1f} ms), "
              f"**B/A {mb / ma:.2f}**")
    for side in ("a", "b"):
        p = out / f"{side}-callgrind.txt"
        j = out / f"{side}-callgrind.json"
        if p.exists() and j.exists():
            total = next((int(l.split()[0].replace(",", "")) for l in p.read_text().splitlines()
                          if "PROGRAM TOTALS" in l), 0)
            n = max(load(j)["acknowledged"], 1)
            print(f"- {side.upper()} under callgrind, 64 in flight: {total / n:,.0f} instructions per update "
                  f"({n} updates)")


if __name__ == "__main__":
    main()
