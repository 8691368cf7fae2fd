"""Check 5: the score comes back when the evaluation is re-run from a clean checkout.

The comparison is a pure function; ``tools.py`` does the clean checkout and the runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from .result import CheckResult, Evidence


def check(recorded: Mapping[int, float], rerun: Mapping[int, float], tolerance: float) -> CheckResult:
    """``recorded``/``rerun``: primary score per seed."""
    seeds = sorted(set(recorded) & set(rerun))
    if not seeds:
        return CheckResult(name="reproduce", verdict="skip", summary="no seed both recorded and re-run")
    evidence = []
    for seed in seeds:
        gap = abs(rerun[seed] - recorded[seed])
        if gap > tolerance:
            evidence.append(Evidence(rule="not-reproduced", value=rerun[seed],
                                     detail=f"seed {seed}: recorded {recorded[seed]:.6g}, clean re-run {rerun[seed]:.6g} "
                                            f"(differs by {gap:.3g} > tolerance {tolerance:.3g})"))
    worst = max(abs(rerun[s] - recorded[s]) for s in seeds)
    return CheckResult.of(
        "reproduce", evidence,
        ok=f"clean re-run matches on {len(seeds)} seed(s) (largest gap {worst:.3g}, tolerance {tolerance:.3g})",
        bad=f"clean re-run differs on {len(evidence)} of {len(seeds)} seed(s)",
        data={"seeds": seeds, "recorded": {str(s): recorded[s] for s in seeds},
              "rerun": {str(s): rerun[s] for s in seeds}, "tolerance": tolerance, "largest_gap": worst})
