"""What trust by construction costs per seed, on the bundled example (tinynet).

    uv run python benchmarks/bench_isolation.py [--rounds N]

The same trial (tinynet's baseline), the same lab, the same process, one seed at a time:

- reference: what evaluation did before the pipeline: one supervised run of the paper's
  script (``python evaluate.py``) in the trial's worktree;
- in_process: the pipeline at the in_process level: a fresh export of the commit, the
  labels placed, one run under the runtime hook with its event channel;
- isolated: the pipeline at the isolated level: a fresh export, the predict run, a fresh
  export of the baseline, the scorer run.

Prints the median wall time per seed of each and the time added over the reference. The
labs run a dispatcher and launcher, as a server does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tinynet_lab import TinynetCampaign  # noqa: E402

from sotalab.tools import trials  # noqa: E402
from sotalab.tools.evaluation import pipeline  # noqa: E402
from sotalab.tools.runs import queue  # noqa: E402


def reference_seed(campaign: TinynetCampaign, seed: int) -> None:
    """One supervised run of evaluate.py in the worktree, as the old evaluation ran it."""
    worktree = trials.load(campaign.lab, campaign.baseline).worktree
    run_id = queue.submit(campaign.lab, queue.RunRequest(
        argv=["python", "evaluate.py"], cwd=worktree, env={"SOTALAB_SEED": str(seed)}, wall_s=120,
        path_prefix=[str(Path(sys.executable).parent)], campaign_id=campaign.id, trial_id=campaign.baseline))
    row = queue.wait(campaign.lab, run_id, 120)
    assert row["status"] == "succeeded", row


def pipeline_seed(campaign: TinynetCampaign, seed: int) -> None:
    result = pipeline.evaluate(campaign.lab, campaign.baseline, purpose="audit", seeds=[seed])
    assert result.label == "keep" and result.score is not None, result.label


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    try:
        isolated = TinynetCampaign(root / "isolated")
        in_process = TinynetCampaign(root / "in-process", spec_file="campaign_in_process.json")
        # As in a running server: the launcher forks supervisors instead of starting Pythons.
        dispatchers = [queue.start_dispatcher(c.lab) for c in (isolated, in_process)]
        # The old layout: the paper's script ran in the worktree with the labels beside it.
        worktree = Path(trials.load(isolated.lab, isolated.baseline).worktree)
        shutil.copytree(isolated.lab.path("labels", isolated.id), worktree, dirs_exist_ok=True)
        times = {"reference": [], "in_process": [], "isolated": []}
        for n in range(args.rounds):  # interleaved, so load on the machine hits all three alike
            times["reference"].append(timed(reference_seed, isolated, n))
            times["in_process"].append(timed(pipeline_seed, in_process, n))
            times["isolated"].append(timed(pipeline_seed, isolated, n))
        median = {k: statistics.median(v) for k, v in times.items()}
        report = {k: round(v, 3) for k, v in median.items()}
        report.update({f"{k}_added_s": round(median[k] - median["reference"], 3) for k in ("in_process", "isolated")})
        report.update({f"{k}_ratio": round(median[k] / median["reference"], 2) for k in ("in_process", "isolated")})
        report["rounds"] = args.rounds
        print(json.dumps(report, indent=2))
        for dispatcher in dispatchers:
            dispatcher.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
