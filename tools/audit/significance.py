"""Check 6: is the gain bigger than the baseline's own noise?

The trial and the baseline are evaluated on the same N seeds, so the comparison is
paired: seed by seed, the trial's score minus the baseline's (signed so that positive
is better). Where the seed drives initialisation and data order, most of a run's
spread is the seed's, and pairing takes it out: an unpaired test over seeds drawn at
random from the whole seed space calls consistent gains "noise". The mean paired gain
must pass a one-sided paired t-test at ``alpha``, its bootstrap confidence interval
(seeds resampled as pairs) must exclude zero, and it must be at least the campaign's
minimum effect size. The interval is always reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from .result import CheckResult, Evidence

DEFAULT_SEEDS = 5
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95


def paired_p(trial: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided p-value that the trial beats the baseline seed for seed (both already
    signed so that higher is better). Constant differences: 0 or 1, exactly."""
    import warnings

    import numpy as np
    from scipy import stats

    diffs = np.asarray(trial, float) - np.asarray(baseline, float)
    if np.ptp(diffs) == 0:
        return 0.0 if diffs.mean() > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue)


def bootstrap_interval(trial: Sequence[float], baseline: Sequence[float],
                       samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired gain (seeds resampled as pairs); deterministic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    diffs = np.asarray(trial, float) - np.asarray(baseline, float)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def check(trial: Sequence[float], baseline: Sequence[float], direction: str, min_effect: float,
          alpha: float = ALPHA) -> CheckResult:
    """``trial``/``baseline``: primary scores, one per seed, the same seeds in the same order."""
    import numpy as np

    if len(trial) != len(baseline):
        raise ValueError(f"paired scores expected: {len(trial)} trial and {len(baseline)} baseline seeds")
    if len(trial) < 2:
        return CheckResult(name="significance", verdict="skip",
                           summary=f"needs at least 2 seeds each (trial {len(trial)}, baseline {len(baseline)})")
    sign = 1.0 if direction == "max" else -1.0
    t, b = sign * np.asarray(trial, float), sign * np.asarray(baseline, float)
    gain = float(t.mean() - b.mean())
    noise = float(b.std(ddof=1))
    p = paired_p(t, b)
    low, high = bootstrap_interval(t, b)
    data = {"gain": gain, "p_value": p, "alpha": alpha, "interval": [low, high], "confidence": CONFIDENCE,
            "noise_floor": noise, "min_effect": min_effect, "seeds": len(t),
            "trial_mean": float(np.mean(trial)), "baseline_mean": float(np.mean(baseline)),
            "trial_scores": [float(x) for x in trial], "baseline_scores": [float(x) for x in baseline]}
    described = (f"gain {gain:+.4g} over {len(t)} seeds, {CONFIDENCE:.0%} interval [{low:+.4g}, {high:+.4g}], "
                 f"paired p={p:.3g}, baseline noise (sd) {noise:.3g}")
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
