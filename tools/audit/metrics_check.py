"""Check 4: every other metric against the baseline; no trading metrics.

A secondary metric the campaign names (``objective.secondary``) that got worse than the
baseline by more than its tolerance, or that the trial no longer reports, fails the check. Metrics the evaluator reports but
the campaign does not name are compared and reported, never judged.
"""

from __future__ import annotations

from collections.abc import Mapping

from .result import CheckResult, Evidence


def _worse_by(direction: str, trial: float, baseline: float) -> float:
    """How much worse ``trial`` is than ``baseline`` (negative: better)."""
    return baseline - trial if direction == "max" else trial - baseline


def check(trial: Mapping[str, float], baseline: Mapping[str, float], objective) -> CheckResult:
    """``trial`` and ``baseline``: metric name -> mean value over seeds."""
    evidence, failing, compared = [], [], {}
    for name, spec in objective.secondary.items():
        if name not in baseline:
            continue  # the baseline never reported it: nothing to hold the trial to
        if name not in trial:
            item = Evidence(rule="metric-missing", value=None,
                            detail=f"{name} is reported by the baseline ({baseline[name]:.4g}) but not by the trial")
            evidence.append(item)
            failing.append(item)  # an unchecked secondary is no better than a wrecked one
            continue
        worse = _worse_by(spec.direction, trial[name], baseline[name])
        compared[name] = {"trial": trial[name], "baseline": baseline[name], "worse_by": worse,
                          "tolerance": spec.tolerance, "direction": spec.direction}
        if worse > spec.tolerance + 1e-12:
            item = Evidence(rule="secondary-regressed", value=trial[name],
                            detail=f"{name} {baseline[name]:.4g} -> {trial[name]:.4g} ({spec.direction} is better): "
                                   f"worse by {worse:.4g}, tolerance {spec.tolerance:.4g}")
            evidence.append(item)
            failing.append(item)
    others = {name: {"trial": trial.get(name), "baseline": value} for name, value in baseline.items()
              if name not in objective.secondary and name != objective.metric}
    named = len(compared)
    return CheckResult.of(
        "metrics", evidence, fail=failing,
        ok=f"{named} secondary metric(s) within tolerance of the baseline" if named
        else "no secondary metric named by the campaign to compare",
        bad="; ".join(e.detail for e in (failing or evidence))[:400],
        data={"secondary": compared, "other": others})
