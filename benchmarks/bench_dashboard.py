"""Dashboard, plots and report benchmarks (issue: see the research), printed as ratios
against a reference run in the same process.

    uv run python benchmarks/bench_dashboard.py [--trials N] [--rounds N]

The reference is `campaign_get` on the same campaign: the cheapest call a page could
poll. Measured in-process through `invoke` (validation, ledger, journal write), which
is what `POST /ui/api/<tool>` runs:

1. one dashboard poll: `campaign_view` (every trial with seeds, audits, runs);
2. `campaign_report` to=png, progress and lineage (matplotlib, PNG);
3. `campaign_report` (markdown, HTML, three plots).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def seed(home: Path, trials: int):
    from sotalab.tools import ledger
    from sotalab.tools.home import Lab
    from sotalab.tools.invoke import invoke

    lab = Lab.open(home)
    cid = invoke(lab, "campaign_create", {
        "name": "bench", "objective": {"metric": "acc", "direction": "max", "reported": 0.5},
        "evaluator": {"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]}})["id"]
    base = invoke(lab, "trial_create", {"campaign": cid, "kind": "baseline"})["id"]
    stamp = ledger.now()
    labels = ["keep", "discard", "crash", "keep", "disqualified"]
    rows = []
    for i in range(trials - 1):
        seeds = {str(s): 0.5 + ((i * 37 + s * 11) % 100) / 400 for s in range(5)}
        score = sum(seeds.values()) / 5
        rows.append({"id": base + 1 + i, "campaign_id": cid, "parent_id": base + (i * 7919) % (i + 1), "kind": "param",
                     "hypothesis": f"trial {i}: change something plausible " * 3, "depth": 1, "status": "evaluated",
                     "label": labels[i % 5], "score": score, "score_std": 0.01, "seed_scores": json.dumps(seeds),
                     "delta_baseline": score - 0.5, "cost": "{}", "evaluated_at": stamp, "created_at": stamp,
                     "updated_at": stamp})
    with lab.db.conn:
        lab.db["trials"].insert_all(rows, batch_size=5000)
        lab.db.execute("UPDATE trials SET score = 0.5, seed_scores = ?, status = 'evaluated', label = 'keep', "
                       "evaluated_at = ? WHERE id = ?", [json.dumps({"0": 0.5}), stamp, base])
    return lab, cid


def timed(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from sotalab.tools.invoke import invoke

    with tempfile.TemporaryDirectory() as tmp:
        lab, cid = seed(Path(tmp) / "lab", args.trials)

        def call(tool: str, **arguments):
            return invoke(lab, tool, {"campaign": cid, **arguments})

        call("campaign_report", to="png")  # matplotlib's first import is start-up, not drawing
        reference = timed(lambda: call("campaign_get"), args.rounds)
        view = timed(lambda: call("campaign_view"), args.rounds)
        size = len(json.dumps(call("campaign_view"), ensure_ascii=False))
        progress = timed(lambda: call("campaign_report", to="png", plot="progress"), max(3, args.rounds // 3))
        lineage = timed(lambda: call("campaign_report", to="png", plot="lineage"), max(3, args.rounds // 3))
        report = timed(lambda: call("campaign_report"), 3)
    print(f"{args.trials} trials, 5 seeds each; medians; reference campaign_get {reference * 1000:.2f} ms")
    for name, value in (("campaign_view (one dashboard poll)", view), ("campaign_report png progress", progress),
                        ("campaign_report png lineage", lineage), ("campaign_report", report)):
        print(f"  {name:<36} {value * 1000:9.1f} ms  {value / reference:7.1f}x campaign_get")
    print(f"  campaign_view result: {size} characters")


if __name__ == "__main__":
    main()
