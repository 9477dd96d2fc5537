#!/usr/bin/env python3
"""Draws a soak run's samples (the JSON that aggregator/tests/it/soak.rs writes to SOAK_OUT) as an
SVG: resident memory, descriptors and connections over time, one panel each.

    python3 bench/soak_chart.py samples.json chart.svg
"""

import json
import sys

W, PANEL_H, LEFT, RIGHT, TOP, GAP = 760, 190, 70, 150, 40, 50
COLOURS = ["#1f5fd1", "#b3261e", "#1e8a3a", "#8a5a00"]


def panel(out, y0, title, xmax, series, unit):
    """One panel at vertical offset y0: `series` is [(label, [(t, value), ...]), ...]."""
    ymax = max((v for _, pts in series for _, v in pts), default=1) * 1.15 or 1
    x = lambda t: LEFT + (W - LEFT - RIGHT) * t / xmax
    y = lambda v: y0 + PANEL_H - PANEL_H * v / ymax
    out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-size="13">{title}</text>')
    for i in range(5):
        gv = ymax * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y(gv):.1f}" x2="{W - RIGHT}" y2="{y(gv):.1f}" stroke="#ddd"/>')
        label = f"{gv:.0f}" if ymax >= 10 else f"{gv:.1f}"
        out.append(f'<text x="{LEFT - 6}" y="{y(gv) + 4:.1f}" text-anchor="end">{label}</text>')
    for i in range(6):
        t = xmax * i / 5
        out.append(f'<text x="{x(t):.1f}" y="{y0 + PANEL_H + 15}" text-anchor="middle" fill="#555">{t:.0f}</text>')
    out.append(f'<line x1="{LEFT}" y1="{y0 + PANEL_H}" x2="{W - RIGHT}" y2="{y0 + PANEL_H}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + PANEL_H}" stroke="black"/>')
    out.append(f'<text x="16" y="{y0 + PANEL_H / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {y0 + PANEL_H / 2})">{unit}</text>')
    for i, (label, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for j, (t, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        ly = y0 + 10 + i * 16
        out.append(f'<line x1="{W - RIGHT + 10}" y1="{ly}" x2="{W - RIGHT + 28}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{W - RIGHT + 34}" y="{ly + 4}">{label}</text>')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        run = json.load(f)
    samples = run["samples"]
    xmax = max(s["t"] for s in samples) * 1.02 or 1
    series = lambda key: [(s["t"], key(s)) for s in samples]
    rate = []
    for a, b in zip(samples, samples[1:]):
        if b["phase"] == "load" and b["t"] > a["t"]:
            rate.append((b["t"], (b["requests"] - a["requests"]) / (b["t"] - a["t"])))
    panels = [
        ("Resident memory", "MiB", [
            ("aggregator", series(lambda s: s["aggregator"]["rss_kib"] / 1024)),
            ("workerd (edge)", series(lambda s: s["workerd"]["rss_kib"] / 1024)),
        ]),
        ("Aggregator descriptors", "count", [
            ("open fds", series(lambda s: s["aggregator"]["fds"])),
            ("sockets", series(lambda s: s["aggregator"]["sockets"])),
        ]),
        ("Connections and load", "count, /s", [
            ("SSE streams", series(lambda s: s["sse_connections_active"])),
            ("hub WebSockets", series(lambda s: s["ws_subscribers_active"])),
            ("updates/s", rate),
        ]),
    ]
    h = TOP + len(panels) * (PANEL_H + GAP) + 20
    length = f'{run["seconds"] / 60:.0f} min' if run["seconds"] >= 120 else f'{run["seconds"]:.0f} s'
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{h}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">Soak: {length}, '
           f'{run["requests"]:,} updates through the edge ({run["replays"]:,} replays), '
           f'SSE clients churning</text>']
    for i, (title, unit, s) in enumerate(panels):
        panel(out, TOP + 20 + i * (PANEL_H + GAP), title, xmax, s, unit)
    last_y = TOP + 20 + len(panels) * (PANEL_H + GAP) - GAP + 28
    out.append(f'<text x="{(W - RIGHT + LEFT) / 2}" y="{last_y}" text-anchor="middle">seconds</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
