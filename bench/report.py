#!/usr/bin/env python3
"""Turns the JSON results of scripts/bench into Markdown tables with the ratios BENCHMARKS.md
reports, and draws the apply latency against offered load as an SVG (no plotting library: the
chart is simple enough to write by hand, and it keeps the tool free of downloads).

    python3 bench/report.py bench/results bench/apply-latency.svg
"""
import glob
import itertools
import json
import os
import statistics
import sys


def load(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ratio(a, b):
    return f"{a / b:.1f}×" if a and b else "n/a"


def apply_rows(directory):
    rows = []
    for name in ["apply-batched.json", "apply-unbatched.json"]:
        r = load(directory, name)
        if r:
            rows.append((name[:-5], r))
    for path in sorted(glob.glob(os.path.join(directory, "apply-open-*.json")),
                       key=lambda p: float(p.rsplit("-", 1)[1][:-5])):
        with open(path) as f:
            rows.append((os.path.basename(path)[:-5], json.load(f)))
    return rows


def read_table(redis, postgres):
    print("| store | route | requests | per second | p50 ms | p99 ms | outcomes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for label, r in [("Redis", redis), ("PostgreSQL only", postgres)]:
        for route in r["routes"]:
            lat = route["latency"]
            print(f"| {label} | `{route['route']}` | {route['requests']} | {route['per_s']:.0f} | "
                  f"{lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {route['outcomes']} |")


def main():
    directory, svg = sys.argv[1], sys.argv[2]
    print("### apply (signed POST /internal/scores, aggregator as its own process)\n")
    print("| run | mode | requests | acknowledged | applied/s | p50 ms | p95 ms | p99 ms | max ms | exactly once |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in apply_rows(directory):
        lat = r["latency"]
        once = r.get("exactly_once") or {}
        print(f"| {name} | {r['mode']} | {r['requests']} | {r['acknowledged']} | {r['applied_per_s']:.0f} | "
              f"{lat['p50_ms']:.1f} | {lat['p95_ms']:.1f} | {lat['p99_ms']:.1f} | {lat['max_ms']:.1f} | "
              f"{'yes' if once.get('ok') else 'NO'} |")
    b, u = load(directory, "apply-batched.json"), load(directory, "apply-unbatched.json")
    if b and u:
        print(f"\n**Group commit vs `APPLY_BATCH_MAX=1`: {ratio(b['applied_per_s'], u['applied_per_s'])}** "
              f"({b['applied_per_s']:.0f} vs {u['applied_per_s']:.0f} applied/s, same run)")

    rr, rp = load(directory, "read-redis.json"), load(directory, "read-postgres.json")
    if rr and rp:
        print("\n### read (closed loop)\n")
        read_table(rr, rp)
        for i, route in enumerate(rr["routes"]):
            print(f"\n**Redis vs PostgreSQL only, `{route['route']}`: "
                  f"{ratio(route['per_s'], rp['routes'][i]['per_s'])}**")

    print("\n### fanout (delivery from the writer's send to each client)\n")
    print("`edge-dev` is the worker under `wrangler dev`; `edge` is the same build in workerd directly; "
          "`edge-ws` its WebSocket clients (`/api/leaderboard/ws`).\n")
    print("| run | via | transport | clients | connected | deliveries | p50 ms | p99 ms | max ms | missed final | server bytes/client | server CPU µs/delivery |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    fan = {}
    names = ["fanout-aggregator-500", "fanout-edge-dev-500"] + [
        f"fanout-edge-{n}" for n in (500, 1000, 2000, 5000)] + [
        f"fanout-edge-ws-{n}" for n in (1000, 5000)] + ["fanout-aggregator-18k"]
    for name in names:
        r = load(directory, name + ".json")
        if not r:
            continue
        fan[name] = r
        d = r["delivery"]
        per = r.get("server_bytes_per_client")
        cpu = r.get("server_cpu_us_per_delivery")
        print(f"| {name} | {r['via']} | {r.get('transport', 'sse')} | {r['clients']} | {r['connected']} | {d['count']} | {d['p50_ms']:.1f} | "
              f"{d['p99_ms']:.1f} | {d['max_ms']:.1f} | {r['missed_final']} | {per and f'{per:.0f}' or '-'} | "
              f"{cpu and f'{cpu:.1f}' or '-'} |")
    if "fanout-aggregator-500" in fan and "fanout-edge-500" in fan:
        a, e = fan["fanout-aggregator-500"]["delivery"], fan["fanout-edge-500"]["delivery"]
        print(f"\n**Aggregator SSE vs edge-hub SSE (workerd), p99 delivery to 500: {a['p99_ms']:.1f} ms vs "
              f"{e['p99_ms']:.1f} ms (edge/aggregator {ratio(e['p99_ms'], a['p99_ms'])})**")

    boards(directory)

    edge(directory)

    chart(directory, svg)
    print(f"\nChart: `{svg}`")


def edge(directory):
    """POST /api/scores through the edge: under wrangler dev, and in workerd directly."""
    runs = [("wrangler dev", "edge-dev")] + [
        ("workerd", f"edge-workerd-{n}") for n in (8, 32, 64)]
    rows = [(mode, name, load(directory, name + ".json")) for mode, name in runs]
    rows = [(mode, name, r) for mode, name, r in rows if r]
    if not rows:
        return
    print("\n### edge (POST /api/scores: session, gate, token, signed forward)\n")
    print("| run | runs in | in flight | acknowledged | per second | p50 ms | p99 ms | workerd CPU ms/update | exactly once |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, name, r in rows:
        lat = r["latency"]
        once = r.get("exactly_once") or {}
        cpu = r.get("server_cpu_ms_per_update")
        in_flight = r["mode"].split(", ")[1].split(" ")[0] if "in flight" in r["mode"] else "-"
        print(f"| {name} | {mode} | {in_flight} | {r['acknowledged']} | {r['applied_per_s']:.0f} | "
              f"{lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} | {cpu and f'{cpu:.2f}' or '-'} | "
              f"{'yes' if once.get('ok') else 'NO'} |")
    storage = load(directory, "edge-storage.json")
    if storage:
        print(f"\n**Durable Object storage rows after every edge run: {storage}** (target: none from the gate)")


def runs_of(directory, pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(directory, pattern)))]


def boards(directory):
    """Many boards: tokens on 3 boards vs 1 (alternating rounds), board reads from Redis vs
    PostgreSQL, 50 boards changing at once, and the single-board numbers against the code
    before (same run)."""
    ones, threes = runs_of(directory, "apply-boards-1-*.json"), runs_of(directory, "apply-boards-3-*.json")
    mixed = runs_of(directory, "apply-boards-3m-*.json")
    if not (ones and threes):
        return
    print("\n### boards\n")
    print("| round | boards per token | acknowledged | events | applied/s | p99 ms | exactly once |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for i, runs in enumerate(itertools.zip_longest(ones, threes, mixed), 1):
        for r, kinds in zip(runs, ("", "", " (sum, best, latest)")):
            if r is None:
                continue
            once = r.get("exactly_once") or {}
            print(f"| {i} | {r.get('boards', 1)}{kinds} | "
                  f"{r['acknowledged']} | {once.get('events', '-')} | "
                  f"{r['applied_per_s']:.0f} | {r['latency']['p99_ms']:.1f} | {'yes' if once.get('ok') else 'NO'} |")
    one = statistics.median([r["applied_per_s"] for r in ones])
    for label, runs in (("3 boards", threes), ("3 boards of mixed kinds (sum, best, latest)", mixed)):
        if not runs:
            continue
        three = statistics.median([r["applied_per_s"] for r in runs])
        each = ", ".join(f"{t['applied_per_s'] / o['applied_per_s']:.2f}" for o, t in zip(ones, runs))
        print(f"\n**Tokens on {label} vs 1: {three / one:.2f}×** (medians of {len(runs)} alternating rounds, "
              f"{three:.0f} vs {one:.0f} applied/s; each round {each}; target ≥ 0.7×)")
    rr, rp = load(directory, "read-board-redis.json"), load(directory, "read-board-postgres.json")
    if rr and rp:
        print()
        read_table(rr, rp)
        for i, route in enumerate(rr["routes"]):
            print(f"\n**`{route['route']}`: {route['per_s']:.0f}/s with Redis (target ≥ 10,000/s), "
                  f"{ratio(route['per_s'], rp['routes'][i]['per_s'])} PostgreSQL only**")
    r10 = load(directory, "read-board-redis-10.json")
    if r10:
        e = r10["routes"][0]
        print(f"\n**`{e['route']}` with pages of 10 (what the page asks for): {e['per_s']:.0f}/s with Redis** "
              f"(p99 {e['latency']['p99_ms']:.2f} ms)")
    f = load(directory, "fanout-boards-50.json")
    if f:
        d = f["delivery"]
        print(f"\n**50 boards changing at once, {f['clients']} SSE clients over them: p99 delivery "
              f"{d['p99_ms']:.1f} ms** (p50 {d['p50_ms']:.1f}, max {d['max_ms']:.1f}, "
              f"{d['count']} deliveries, {f['missed_final']} missed the final version)")
    ab(directory)


def ab(directory):
    """The code before and now, single board, alternating runs of the same steps."""
    def runs(side, kind):
        return runs_of(directory, f"ab-{side}-{kind}-*.json")
    before, now = runs("before", "apply"), runs("now", "apply")
    if not (before and now):
        return
    mean = statistics.mean
    print(f"\n| single board, {len(now)} alternating runs each | before | now | now/before |")
    print("| --- | ---: | ---: | ---: |")
    b, n = mean([r["applied_per_s"] for r in before]), mean([r["applied_per_s"] for r in now])
    each = lambda rs: ", ".join("%.0f" % r["applied_per_s"] for r in rs)
    print(f"| applied/s (closed loop, mean; runs {each(before)} vs {each(now)}) | {b:.0f} | {n:.0f} | {n / b:.2f} |")
    rb, rn = runs("before", "read"), runs("now", "read")
    for i, route in enumerate(rb[0]["routes"] if rb else []):
        b = mean([r["routes"][i]["per_s"] for r in rb])
        n = mean([r["routes"][i]["per_s"] for r in rn])
        print(f"| `{route['route']}` per second (Redis, mean) | {b:.0f} | {n:.0f} | {n / b:.2f} |")


def chart(directory, svg):
    points = []
    for name, r in apply_rows(directory):
        # Past saturation the latencies are queueing time in seconds and would flatten the
        # rest of the chart: those runs are in the table, the chart shows the sustained ones.
        if name.startswith("apply-open-") and r["acknowledged"] == r["requests"]:
            offered = float(name.rsplit("-", 1)[1])
            points.append((offered, r["applied_per_s"], r["latency"]["p50_ms"], r["latency"]["p99_ms"]))
    if not points:
        return
    w, h, left, bottom, top, right = 720, 420, 70, 50, 30, 30
    xmax = max(p[0] for p in points) * 1.05
    ymax = max(p[3] for p in points) * 1.15 or 1
    x = lambda v: left + (w - left - right) * v / xmax
    y = lambda v: h - bottom - (h - top - bottom) * v / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14">apply: latency against offered load '
           '(open loop, fsync on; runs that kept up)</text>']
    for i in range(6):
        gy = ymax * i / 5
        out.append(f'<line x1="{left}" y1="{y(gy):.1f}" x2="{w - right}" y2="{y(gy):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(gy) + 4:.1f}" text-anchor="end">{gy:.0f}</text>')
    for offered, *_ in points:
        out.append(f'<text x="{x(offered):.1f}" y="{h - bottom + 16}" text-anchor="middle">{offered:.0f}</text>')
    out.append(f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">offered updates per second</text>')
    out.append(f'<text x="16" y="{h / 2}" text-anchor="middle" transform="rotate(-90 16 {h / 2})">latency, ms</text>')
    for idx, colour, label in [(2, "#1f5fd1", "p50"), (3, "#b3261e", "p99")]:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(p[0]):.1f},{y(p[idx]):.1f}" for i, p in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in points:
            out.append(f'<circle cx="{x(p[0]):.1f}" cy="{y(p[idx]):.1f}" r="3" fill="{colour}"/>')
        ly = top + 10 + (idx - 2) * 16
        out.append(f'<line x1="{w - right - 110}" y1="{ly}" x2="{w - right - 90}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{w - right - 84}" y="{ly + 4}">{label}</text>')
    for p in points:
        out.append(f'<text x="{x(p[0]):.1f}" y="{y(p[3]) - 8:.1f}" text-anchor="middle" fill="#555">'
                   f'{p[1]:.0f}/s</text>')
    out.append("</svg>")
    with open(svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
