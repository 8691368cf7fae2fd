"""Check 6: is the gain bigger than the baseline's own noise?

The trial and the baseline are each evaluated over the same N seeds. The gain (mean
difference, signed so that positive is better) must pass a one-sided Welch t-test at
``alpha``, its bootstrap confidence interval must exclude zero, and it must be at least
the campaign's minimum effect size. The interval is always reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from .result import CheckResult, Evidence

DEFAULT_SEEDS = 5
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95


def welch_p(gains_trial: Sequence[float], gains_baseline: Sequence[float]) -> float:
    """One-sided p-value that the trial's mean is above the baseline's (both already
    signed so that higher is better). Two constant samples: 0 or 1, exactly."""
    import warnings

    import numpy as np
    from scipy import stats

    t, b = np.asarray(gains_trial, float), np.asarray(gains_baseline, float)
    if np.ptp(t) == 0 and np.ptp(b) == 0:
        return 0.0 if t.mean() > b.mean() else 1.0
    with warnings.catch_warnings():
        # One constant sample (a hard-coded score) is a legitimate input, not a precision problem.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(t, b, equal_var=False, alternative="greater").pvalue)


def bootstrap_interval(gains_trial: Sequence[float], gains_baseline: Sequence[float],
                       samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(trial) - mean(baseline); deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t, b = np.asarray(gains_trial, float), np.asarray(gains_baseline, float)
    diffs = (rng.choice(t, size=(samples, len(t))).mean(axis=1)
             - rng.choice(b, size=(samples, len(b))).mean(axis=1))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def check(trial: Sequence[float], baseline: Sequence[float], direction: str, min_effect: float,
          alpha: float = ALPHA) -> CheckResult:
    """``trial``/``baseline``: primary scores, one per seed, same seeds."""
    import numpy as np

    if len(trial) < 2 or len(baseline) < 2:
        return CheckResult(name="significance", verdict="skip",
                           summary=f"needs at least 2 seeds each (trial {len(trial)}, baseline {len(baseline)})")
    sign = 1.0 if direction == "max" else -1.0
    t, b = sign * np.asarray(trial, float), sign * np.asarray(baseline, float)
    gain = float(t.mean() - b.mean())
    noise = float(b.std(ddof=1))
    p = welch_p(t, b)
    low, high = bootstrap_interval(t, b)
    data = {"gain": gain, "p_value": p, "alpha": alpha, "interval": [low, high], "confidence": CONFIDENCE,
            "noise_floor": noise, "min_effect": min_effect, "seeds": len(t),
            "trial_mean": float(np.mean(trial)), "baseline_mean": float(np.mean(baseline)),
            "trial_scores": [float(x) for x in trial], "baseline_scores": [float(x) for x in baseline]}
    described = (f"gain {gain:+.4g} over {len(t)} seeds, {CONFIDENCE:.0%} interval [{low:+.4g}, {high:+.4g}], "
                 f"Welch p={p:.3g}, baseline noise (sd) {noise:.3g}")
    failing = []
    if p >= alpha or low <= 0:
        failing.append(Evidence(rule="not-significant", value=p,
                                detail=f"p={p:.3g} (alpha {alpha}), interval [{low:+.4g}, {high:+.4g}]"))
    if len(t) >= 3 and np.ptp(t) == 0 and np.ptp(b) > 0:
        # A pinned (best-found) seed makes one lucky draw look like a noiseless gain.
        failing.append(Evidence(rule="seed-ignored", value=float(np.mean(trial)),
                                detail=f"the trial scored {float(np.mean(trial)):.6g} on all {len(t)} seeds while the "
                                       f"baseline varied by {float(np.ptp(b)):.3g}: the seed no longer reaches the run"))
    if gain < min_effect:
        failing.append(Evidence(rule="below-min-effect", value=gain,
                                detail=f"gain {gain:+.4g} < minimum effect {min_effect:.4g}"))
    return CheckResult.of("significance", failing, ok=f"significant: {described}",
                          bad=f"not shown: {described}", data=data)
