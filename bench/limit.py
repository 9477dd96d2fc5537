#!/usr/bin/env python3
"""The tables of scripts/bench-limit: PostgreSQL's batched insert rate, the "empty" baseline
and the apply path on boards of each size, three rounds each, with their medians, their spread
and the ratios the targets ask for (all measured in the same run).

    bench/limit.py PG_JSONL RESULTS_DIR
"""
import glob
import json
import os
import re
import statistics
import sys

NAME = re.compile(r"limit-(empty|apply)-(?:(\d+)-)?(\d+)-(\d+)\.json$")


def runs(directory):
    """{(kind, players, in_flight): {round: report}} from limit-*.json."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "limit-*.json"))):
        m = NAME.search(path)
        if not m:
            continue
        kind, players, in_flight, rnd = m.groups()
        if kind == "empty":
            players = "1000"
        with open(path) as f:
            out.setdefault((kind, int(players), int(in_flight)), {})[int(rnd)] = json.load(f)
    return out


def spread(values):
    """The largest distance from the median, in % of it."""
    med = statistics.median(values)
    return max(abs(v - med) for v in values) * 100 / med if med else 0.0


def label(kind, players, in_flight):
    if kind == "empty":
        return f"empty (checked only), {in_flight} in flight"
    return f"apply, {players:,} players, {in_flight} in flight"


def main(pg_jsonl, directory):
    print("#### PostgreSQL alone (pgbench, 100-row INSERTs, one transaction each)\n")
    print("| clients | statements/s | rows/s |")
    print("| ---: | ---: | ---: |")
    pg_rows = {}
    with open(pg_jsonl) as f:
        for line in f:
            r = json.loads(line)
            rows = r["statements_per_s"] * r["rows_per_statement"]
            pg_rows[("pg", r["clients"], 0)] = rows
            print(f"| {r['clients']} | {r['statements_per_s']:,.0f} | {rows:,.0f} |")
    all_runs = runs(directory)
    order = sorted(all_runs, key=lambda k: (k[0] != "empty", k[2] != 64, k[1]))
    rounds = sorted({r for v in all_runs.values() for r in v})
    print("\n#### The HTTP path without the batcher, and the apply path\n")
    head = " | ".join(f"round {r}" for r in rounds)
    print(f"| run | {head} | median /s | spread | p50 ms | p99 ms | exactly once |")
    print("| --- | " + " | ".join("---:" for _ in rounds) + " | ---: | ---: | ---: | ---: | --- |")
    medians = {}
    for key in order:
        by_round = all_runs[key]
        rates = [by_round[r]["applied_per_s"] for r in rounds if r in by_round]
        cells = " | ".join(
            f"{by_round[r]['applied_per_s']:,.0f}" if r in by_round else "" for r in rounds
        )
        p50 = statistics.median(by_round[r]["latency"]["p50_ms"] for r in by_round)
        p99 = statistics.median(by_round[r]["latency"]["p99_ms"] for r in by_round)
        checks = [by_round[r].get("exactly_once") for r in by_round]
        once = "n/a" if all(c is None for c in checks) else (
            "yes" if all(c and c["ok"] for c in checks) else "NO")
        medians[key] = statistics.median(rates)
        print(f"| {label(*key)} | {cells} | {medians[key]:,.0f} | ±{spread(rates):.0f}% "
              f"| {p50:.1f} | {p99:.1f} | {once} |")
    cpu_table(directory, order, all_runs)
    fanout(directory)
    print()
    ratio("apply ÷ empty at 256 in flight, 1,000 players", medians,
          ("apply", 1000, 256), ("empty", 1000, 256))
    ratio("apply ÷ empty at 64 in flight, 1,000 players", medians,
          ("apply", 1000, 64), ("empty", 1000, 64))
    ratio("apply at 256 in flight ÷ PostgreSQL's rows/s at 1 client", {**medians, **pg_rows},
          ("apply", 1000, 256), ("pg", 1, 0))
    sizes = sorted(p for (k, p, f) in medians if k == "apply" and f == 256)
    for players in sizes[1:]:
        ratio(f"{players:,} players ÷ {sizes[0]:,} players at 256 in flight", medians,
              ("apply", players, 256), ("apply", sizes[0], 256))


def cpu_table(directory, order, all_runs):
    """Each process group's CPU per update while the clock ran (medians over the rounds)."""
    cpu = {}
    for key in order:
        kind, players, in_flight = key
        middle = f"{players}-" if kind == "apply" else ""
        for rnd in all_runs[key]:
            path = os.path.join(directory, f"limit-{kind}-{middle}{in_flight}-{rnd}-cpu.json")
            if os.path.exists(path):
                with open(path) as f:
                    cpu.setdefault(key, []).append(json.load(f))
    if not cpu:
        return
    groups = ["loadgen", "aggregator", "postgres", "redis"]
    print("\n#### CPU per update while the clock ran (ms, medians over the rounds)\n")
    print("| run | " + " | ".join(groups) + " | all | of two cores' time |")
    print("| --- | " + " | ".join("---:" for _ in groups) + " | ---: | ---: |")
    for key, samples in cpu.items():
        cells = [statistics.median(s["cpu_ms_per_update"].get(g, 0) for s in samples) for g in groups]
        total = statistics.median(s["total_ms_per_update"] for s in samples)
        rate = statistics.median(r["applied_per_s"] for r in all_runs[key].values())
        busy = total * rate / 1000 / 2 * 100
        print(f"| {label(*key)} | " + " | ".join(f"{c:.3f}" for c in cells)
              + f" | {total:.3f} | {busy:.0f}% |")


def fanout(directory):
    """The fan-out while writing, from limit-fanout-*.json, when it ran."""
    try:
        with open(os.path.join(directory, "limit-fanout-clients.json")) as f:
            clients = json.load(f)
        with open(os.path.join(directory, "limit-fanout-writes.json")) as f:
            writes = json.load(f)
    except OSError:
        return
    d, lat = clients["delivery"], writes["latency"]
    once = writes.get("exactly_once") or {}
    print("\n#### Fan-out while writing\n")
    print("| SSE clients | connected | missed the last change | delivery p50 / p99 / max ms "
          "| writes | applied/s | write p50 / p99 ms | exactly once |")
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    print(f"| {clients['clients']:,} | {clients['connected']:,} | {clients['missed_final']} "
          f"| {d['p50_ms']:.0f} / {d['p99_ms']:.0f} / {d['max_ms']:.0f} | {writes['mode']} "
          f"| {writes['applied_per_s']:,.0f} | {lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} "
          f"| {'yes' if once.get('ok') else 'NO'} |")


def ratio(what, medians, top, bottom):
    if top in medians and bottom in medians and medians[bottom]:
        print(f"- {what}: **{medians[top] / medians[bottom]:.2f}** (medians)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
