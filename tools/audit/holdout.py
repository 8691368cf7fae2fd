"""Finalize's check: does the held-out gain agree with the validation gain?

A claim's gain was measured on the validation split by its full audit; finalize
measures it again on the sealed held-out split. Both are means over seeds with their
own noise. When they disagree by more than that noise allows (and by more than a share
of the gain that two finite splits alone explain), in either direction, something other
than the method moved the number: a held-out gain far below the
validation gain is the signature of tuning to, or training on, the validation split.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .result import CheckResult, Evidence

# Standard errors of the difference of the two gains beyond which they disagree.
AGREEMENT_Z = 3.0
# Seed noise is not the only noise: two different splits of finite size give different
# gains even for a deterministic evaluator (zero seed noise). A gap must also be this
# share of the validation gain before it is called a disagreement.
RELATIVE_FLOOR = 0.35


def _gain_and_variance(trial: Sequence[float], baseline: Sequence[float], sign: float) -> tuple[float, float]:
    gain = sign * (statistics.fmean(trial) - statistics.fmean(baseline))
    var = sum(statistics.variance(xs) / len(xs) for xs in (trial, baseline) if len(xs) > 1)
    return gain, var


def check(validation: tuple[Sequence[float], Sequence[float]], held_out: tuple[Sequence[float], Sequence[float]],
          direction: str) -> CheckResult:
    """``validation``/``held_out``: (trial scores, baseline scores) per seed on each split."""
    if not all(validation) or not all(held_out):
        return CheckResult(name="held_out_agreement", verdict="skip",
                           summary="needs seed scores of trial and baseline on both splits")
    sign = 1.0 if direction == "max" else -1.0
    val_gain, val_var = _gain_and_variance(*validation, sign)
    held_gain, held_var = _gain_and_variance(*held_out, sign)
    se = math.sqrt(val_var + held_var)
    gap = held_gain - val_gain
    limit = max(AGREEMENT_Z * se, RELATIVE_FLOOR * abs(val_gain))
    data = {"validation_gain": val_gain, "held_out_gain": held_gain, "gap": gap, "standard_error": se,
            "z_limit": AGREEMENT_Z, "relative_floor": RELATIVE_FLOOR, "limit": limit}
    described = (f"validation gain {val_gain:+.4g}, held-out gain {held_gain:+.4g} "
                 f"(gap {gap:+.4g}, standard error {se:.3g})")
    evidence = []
    if abs(gap) > limit and abs(gap) > 1e-12:
        direction_word = "below" if gap < 0 else "above"
        evidence.append(Evidence(
            rule="held-out-disagrees", value=gap,
            detail=f"the held-out gain is {abs(gap):.4g} {direction_word} the validation gain, more than "
                   f"{AGREEMENT_Z:g} standard errors and {RELATIVE_FLOOR:.0%} of that gain ({limit:.3g})"
                   + (": the signature of tuning to, or training on, the validation split" if gap < 0 else "")))
    return CheckResult.of("held_out_agreement", evidence, ok=f"agrees: {described}",
                          bad=f"anomaly: {described}", data=data)


def failed(failed_seeds: Sequence[int], total: int) -> CheckResult:
    """The claim failed on held-out seeds: its full audit ran every validation seed, so a
    failure only here is the claim's (code can tell the splits apart), never a gap to skip."""
    return CheckResult.of("held_out_agreement", [Evidence(
        rule="held-out-failed", value=float(len(failed_seeds)),
        detail=f"the claim failed on {len(failed_seeds)} of {total} held-out seed(s) ({', '.join(map(str, failed_seeds))}) "
               "where every validation seed of its audit ran: a claim that does not run on the held-out split is "
               "not shown to hold there")], ok="", bad="anomaly: the claim failed on the held-out split",
        data={"failed_seeds": list(failed_seeds)})
