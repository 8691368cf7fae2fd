"""Audit runs: the evaluation pipeline at purpose ``audit``, never recording a score.

Every seed runs in a fresh export of the audited commit (the pipeline's own), and the
seeds of an audit are drawn by the server when the audit starts (``evaluation.seeds``),
so the trial cannot know them. A seed that crashed, timed out or gave no primary metric
is returned as failed, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..evaluation import pipeline
from ..home import Lab
from ..registry import Progress, no_progress

PURPOSE = "audit"


@dataclass
class SeedMetrics:
    """Metrics per seed that succeeded, and the seeds that did not."""

    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # seed -> label


def evaluate_seeds(lab: Lab, trial_id: int, seeds: list[int], progress: Progress = no_progress) -> SeedMetrics:
    """The trial's committed snapshot evaluated on ``seeds``; GPU time is charged to the campaign."""
    result = pipeline.evaluate(lab, trial_id, purpose=PURPOSE, seeds=seeds, progress=progress)
    out = SeedMetrics()
    for run in result.runs:
        if run.label == "ok":
            out.metrics[run.seed] = run.metrics
        else:
            out.failed[run.seed] = run.label
    return out
