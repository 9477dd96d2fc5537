"""Batch figures between two scrapes of an aggregator's /metrics, and the regression of a
batch's duration on its size over several runs (scripts/bench-batches).

    python3 bench/batches.py delta BEFORE AFTER LABEL LOADGEN_JSON   # one run, a JSON line
    python3 bench/batches.py fit RUNS.jsonl             # the table and the fit, in Markdown
    python3 bench/batches.py open LOADGEN_JSON RATE     # an open-loop run, one line
    python3 bench/batches.py explain POSTGRES_LOG       # the batch's statements as PostgreSQL
                                                        # ran them (auto_explain), in Markdown
"""
import json
import re
import sys

# A batch's phases in order (aggregator/src/apply/phases.rs). Older runs timed a "snapshots"
# phase inside the transaction; it is now part of "redis".
PHASES = ("queue", "fill", "connect", "lock", "read", "plan", "write", "snapshots", "commit",
          "previous", "redis", "announce", "answers")
# Those a batch holds the batcher for, from taking a connection to the previous batch's
# finish: the serial path.
SERIAL = ("connect", "lock", "read", "plan", "write", "commit", "previous")

SERIES = re.compile(r'^(apply_batch_(?:size|duration_seconds|phase_seconds)_(?:sum|count))(\{phase="(\w+)"\})? (\S+)$')


def scrape(path):
    values = {}
    for line in open(path):
        m = SERIES.match(line.strip())
        if m:
            name, _, phase, value = m.groups()
            values[(name, phase)] = float(value)
    return values


def delta(before, after, label, loadgen):
    b, a = scrape(before), scrape(after)
    run = json.load(open(loadgen))
    d = {k: a[k] - b.get(k, 0.0) for k in a}
    batches = d.get(("apply_batch_size_count", None), 0.0)
    if batches <= 0:
        raise SystemExit("no batch between the two scrapes")
    phases = {}
    for (name, phase), v in d.items():
        if name == "apply_batch_phase_seconds_sum" and phase:
            n = d.get(("apply_batch_phase_seconds_count", phase), 0.0)
            if n:
                phases[phase] = round(1000 * v / n, 3)
    print(json.dumps({
        "label": label,
        "batches": int(batches),
        "mean_size": round(d[("apply_batch_size_sum", None)] / batches, 2),
        "mean_ms": round(1000 * d[("apply_batch_duration_seconds_sum", None)]
                         / d[("apply_batch_duration_seconds_count", None)], 3),
        "phases_ms": phases,
        "applied_per_s": round(run["applied_per_s"]),
        "p99_ms": run["latency"]["p99_ms"],
    }))


def fit(path):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    xs = [r["mean_size"] for r in runs]
    ys = [r["mean_ms"] for r in runs]
    n = len(runs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    order = [p for p in PHASES if any(p in r["phases_ms"] for r in runs)]
    print("| run | applied/s | p99 ms | batches | mean batch | batch ms | " + " | ".join(order) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in order) + " |")
    for r in runs:
        cells = [f'{r["phases_ms"].get(p, 0):.2f}' for p in order]
        print(f'| {r["label"]} | {r["applied_per_s"]} | {r["p99_ms"]:.1f} | {r["batches"]} | '
              f'{r["mean_size"]:.1f} | {r["mean_ms"]:.2f} | ' + " | ".join(cells) + " |")
    print()
    print(f"batch ms = {intercept:.3f} + {slope * 1000:.1f} µs × updates (R² {r2:.3f}, {n} runs)")
    json.dump({"intercept_ms": intercept, "per_update_us": slope * 1000, "r2": r2, "runs": runs},
              open(path.replace(".jsonl", "-fit.json"), "w"), indent=1)


# The batch's statements, told apart by what their text contains.
STATEMENTS = [
    ("read (players, sessions, tokens, boards, entries)", "WITH ORDINALITY AS p(player_id"),
    ("write (tokens, events, versions, entries)", "INSERT INTO consumed_tokens"),
    ("snapshots (top 10s)", "LIMIT 10"),
    ("BEGIN and the writers' lock", "pg_advisory_xact_lock"),
]


def explain(path):
    """Execution times inside PostgreSQL of the sampled batch statements (auto_explain with
    log_analyze), against which the aggregator's phase times (round trip, waiting to be polled,
    decoding included) can be read."""
    text = open(path, errors="replace").read()
    entries = re.split(r"\n(?=\S+ \S+ UTC \[\d+\] LOG:  duration:)", text)
    times = {name: [] for name, _ in STATEMENTS}
    rows = {name: [] for name, _ in STATEMENTS}
    for e in entries:
        m = re.search(r"duration: ([\d.]+) ms", e)
        if not m:
            continue
        for name, needle in STATEMENTS:
            if needle in e:
                times[name].append(float(m.group(1)))
                r = re.search(r"actual time=\S+ rows=(\d+)", e)
                if r:
                    rows[name].append(int(r.group(1)))
                break
    print("| statement | sampled | mean ms in PostgreSQL | max ms | mean rows out |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _ in STATEMENTS:
        t = times[name]
        if t:
            r = rows[name]
            print(f"| {name} | {len(t)} | {sum(t) / len(t):.3f} | {max(t):.3f} | "
                  f"{(sum(r) / len(r)) if r else 0:.0f} |")


def open_loop(path, rate):
    run = json.load(open(path))
    latency, once = run["latency"], run.get("exactly_once") or {}
    print(f"open loop at {rate}/s offered: {run['applied_per_s']:.0f}/s applied, "
          f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
          f"exactly once: {'yes' if once.get('ok') else 'NO'}")


if __name__ == "__main__":
    if sys.argv[1] == "delta":
        delta(*sys.argv[2:6])
    elif sys.argv[1] == "open":
        open_loop(*sys.argv[2:4])
    elif sys.argv[1] == "explain":
        explain(sys.argv[2])
    else:
        fit(sys.argv[2])
