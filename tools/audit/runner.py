"""Audit runs: the evaluation pipeline at purpose ``audit``, never recording a score.

Every seed runs in a fresh export of the audited commit (the pipeline's own), and the
seeds of an audit are drawn by the server when the audit starts (``evaluation.seeds``),
so the trial cannot know them. A seed that crashed, timed out or gave no primary metric
is returned as failed, never silently dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from ..evaluation import pipeline
from ..home import Lab
from ..registry import Progress, no_progress

PURPOSE = "audit"
T = TypeVar("T")


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


def together(work: dict[str, Callable[[Progress], T]], progress: Progress, step: float,
             total: float) -> dict[str, T]:
    """Several evaluations at once (the trial's, the baseline's, the parent's): each
    submits all its seeds to the run queue, so together they run side by side as far as
    CPU slots and GPUs allow instead of one evaluation after the other. Each run is still
    its own sandbox on its own fresh export. Progress stays at ``step`` of ``total``, with
    the message saying whose evaluation it is about."""
    lock = threading.Lock()

    def tagged(who: str) -> Progress:
        def report(done: float, of: float | None = None, message: str | None = None) -> None:
            with lock:  # one progress sink, several threads
                progress(step, total, f"{who}: {message}" if message else who)
        return report

    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="audit-eval") as pool:
        futures = {who: pool.submit(call, tagged(who)) for who, call in work.items()}
        return {who: future.result() for who, future in futures.items()}
