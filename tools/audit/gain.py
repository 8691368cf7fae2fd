"""Check: is there a gain at all? The trial's recorded score against the baseline's.

A quick audit runs nothing, so it cannot show significance; but it must never call a
trial that scores no better than the baseline valid (issue #16). The full audit's
significance check is the real test of a gain; this one only rules out "no gain".
"""

from __future__ import annotations

from .result import CheckResult, Evidence


def check(trial: float | None, baseline: float | None, direction: str) -> CheckResult:
    """``trial``/``baseline``: the recorded primary scores (means over their seeds)."""
    if trial is None or baseline is None:
        return CheckResult(name="gain", verdict="skip", summary="needs the trial's and the baseline's scores")
    sign = 1.0 if direction == "max" else -1.0
    gain = sign * (trial - baseline)
    described = f"recorded score {trial:.6g} against the baseline's {baseline:.6g} ({direction} is better)"
    evidence = [] if gain > 0 else [Evidence(rule="no-gain", value=gain, detail=f"no gain: {described}")]
    return CheckResult.of("gain", evidence, ok=f"gain {gain:+.4g}: {described}", bad=f"no gain: {described}",
                          data={"gain": gain, "trial": trial, "baseline": baseline})
