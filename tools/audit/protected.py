"""Check 1: the protected files (evaluator code and data) are as at baseline."""

from __future__ import annotations

from ..protected import ProtectedReport
from .result import CheckResult, Evidence


def check(report: ProtectedReport) -> CheckResult:
    """``report``: the trial commit's protected files against the baseline manifest."""
    evidence = [Evidence(rule="protected-changed", file=path, detail=f"protected file {how}")
                for how, paths in (("changed", report.changed), ("added", report.added), ("deleted", report.deleted))
                for path in paths]
    return CheckResult.of(
        "protected", evidence,
        ok=f"all {report.checked} protected files match their baseline hashes",
        bad=f"{len(evidence)} protected file(s) differ from the baseline: "
            + ", ".join(e.file for e in evidence[:10]),
        data=report.model_dump())
