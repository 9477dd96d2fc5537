#!/usr/bin/env python3
"""Draws the long form of aggregator/tests/it/scale.rs (the CSV it writes to SCALE_SAMPLES:
t, applied, mode) as an SVG: applied updates a second, per minute and per sample, with the
samples taken while the Redis copy was degraded or rebuilding marked below.

    python3 bench/degraded_chart.py samples.csv chart.svg "title"
"""

import csv
import sys

from soak_chart import PANEL_H, LEFT, RIGHT, TOP, GAP, W, panel

MODE_COLOURS = {"degraded": "#b3261e", "rebuilding": "#8a5a00"}


def per_window(rows, seconds):
    """(end of window, applied/s over it) for consecutive windows of `seconds`."""
    out, start = [], rows[0]
    for r in rows[1:]:
        if r[0] - start[0] >= seconds or r is rows[-1]:
            out.append((r[0], (r[1] - start[1]) / max(r[0] - start[0], 1e-9)))
            start = r
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        rows = [(float(r["t"]), int(r["applied"]), r["mode"]) for r in csv.DictReader(f)]
    xmax = rows[-1][0] * 1.02 or 1
    series = [("per minute", per_window(rows, 60)), ("per sample", per_window(rows, 0.1))]
    h = TOP + PANEL_H + GAP + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{h}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{sys.argv[3]}</text>']
    y0 = TOP + 20
    panel(out, y0, "Applied updates a second", xmax, series, "updates/s")
    x = lambda t: LEFT + (W - LEFT - RIGHT) * t / xmax
    band = y0 + PANEL_H + 24
    for (t0, _, mode), (t1, _, _) in zip(rows, rows[1:]):
        if mode in MODE_COLOURS:
            out.append(f'<rect x="{x(t0):.1f}" y="{band}" width="{max(x(t1) - x(t0), 1):.1f}" '
                       f'height="8" fill="{MODE_COLOURS[mode]}"/>')
    for i, (mode, colour) in enumerate(MODE_COLOURS.items()):
        out.append(f'<rect x="{W - RIGHT + 10}" y="{band + i * 14}" width="18" height="8" fill="{colour}"/>')
        out.append(f'<text x="{W - RIGHT + 34}" y="{band + 8 + i * 14}">Redis {mode}</text>')
    out.append(f'<text x="{(W - RIGHT + LEFT) / 2}" y="{band + 30}" text-anchor="middle">seconds</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
