"""Check 7: the trial stayed within the campaign's budgets.

Usage keys match the budget fields they are held to; a budget with no measurement is
reported as unmeasured, never as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping

from .result import CheckResult, Evidence

# budget field -> (usage key, unit, what it is)
LIMITS = {
    "run_wall_s": ("wall_s", "s", "longest evaluation run"),
    "memory_gb": ("peak_rss_gb", "GB", "peak memory of a run"),
    "gpu_memory_gb": ("peak_gpu_memory_gb", "GB", "peak GPU memory of a run"),
    "artifact_mb": ("artifact_mb", "MB", "size of the trial's files"),
    "max_params": ("params", "", "model parameters"),
}


def check(budgets: Mapping[str, float | None], usage: Mapping[str, float | None]) -> CheckResult:
    evidence, checked, unmeasured = [], {}, []
    for field, (key, unit, what) in LIMITS.items():
        limit = budgets.get(field)
        if limit is None:
            continue
        used = usage.get(key)
        if used is None:
            unmeasured.append(field)
            continue
        checked[field] = {"used": used, "limit": limit}
        if used > limit:
            evidence.append(Evidence(rule="over-budget", value=used,
                                     detail=f"{what}: {used:.4g}{unit} over the {field} budget of {limit:.4g}{unit}"))
    note = f"; not measured: {', '.join(unmeasured)}" if unmeasured else ""
    return CheckResult.of(
        "budget", evidence,
        ok=(f"within {len(checked)} budget(s): {', '.join(checked)}" if checked else "no budget to check") + note,
        bad="; ".join(e.detail for e in evidence) + note,
        data={"checked": checked, "unmeasured": unmeasured, "usage": dict(usage)})
