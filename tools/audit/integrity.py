"""Check 2: the score is the server's own, and the ledger says what the runs said.

Every seed score on the trial must come from a succeeded evaluation run of this trial's
commit; the ledger's numbers must equal the run's parsed metrics (and the trial's score
their mean); and the run's output must not print the primary metric twice with
different values (a planted line competing with the evaluator's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .result import CheckResult, Evidence

TOLERANCE = 1e-9
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class RunRecord:
    """What the audit needs of one evaluation run."""

    id: int
    seed: int | None
    status: str
    metrics: dict = field(default_factory=dict)
    output: str = ""             # the run's log (stdout and stderr), possibly capped
    commit: str | None = None    # the commit it evaluated, where the run recorded it
    reparsed: dict = field(default_factory=dict)  # metrics read again from the run's files by the audit


def metric_values(output: str, regex: str) -> list[float]:
    """Every value the metric regex reads from ``output`` (group 'value', else group 1)."""
    pattern = re.compile(regex, re.MULTILINE)
    values = []
    for match in pattern.finditer(output):
        text = match.groupdict().get("value") or (match.group(1) if pattern.groups else match.group(0))
        number = _NUMBER.search(text or "")
        if number:
            values.append(float(number.group(0)))
    return values


def check(primary: str, regex: str | None, score: float | None, seed_scores: Mapping[int, float],
          runs: Sequence[RunRecord], commit: str | None,
          ledger_metrics: Mapping[int, Mapping[str, float]] | None = None,
          committed_after_scoring: bool = False) -> CheckResult:
    """``seed_scores``/``ledger_metrics``: what the ledger holds per seed; ``runs``: the
    evaluation runs behind them; ``committed_after_scoring``: the trial's commit is newer
    than its last evaluation (a snapshot taken since), so the score is for other code."""
    evidence: list[Evidence] = []
    if score is None or not seed_scores:
        evidence.append(Evidence(rule="score-not-server-run", detail="the trial has no evaluator-owned score"))
        return CheckResult.of("integrity", evidence, ok="", bad="the trial has no evaluator-owned score")
    if committed_after_scoring:
        evidence.append(Evidence(rule="score-not-server-run", value=commit,
                                 detail=f"commit {(commit or '?')[:12]} was made after the trial's last evaluation: "
                                        "the score belongs to earlier code"))
    by_seed: dict[int, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.id):
        if run.status == "succeeded" and (commit is None or run.commit in (None, commit)):
            by_seed[run.seed] = run  # the latest succeeded run of each seed
    for seed, value in sorted(seed_scores.items()):
        run = by_seed.get(seed)
        if run is None:
            evidence.append(Evidence(rule="score-not-server-run", value=value,
                                     detail=f"seed {seed}: no succeeded evaluation run of commit {(commit or '?')[:12]}"))
            continue
        ran = run.metrics.get(primary)
        if ran is None or abs(float(ran) - value) > TOLERANCE:
            evidence.append(Evidence(rule="ledger-run-mismatch", value=value,
                                     detail=f"seed {seed}: ledger {value!r}, run {run.id} parsed {ran!r}"))
        for name, held in ((ledger_metrics or {}).get(seed) or {}).items():
            ran_value = run.metrics.get(name)
            if name != primary and (ran_value is None or abs(float(ran_value) - float(held)) > TOLERANCE):
                evidence.append(Evidence(rule="ledger-run-mismatch", value=held,
                                         detail=f"seed {seed}: ledger {name}={held!r}, run {run.id} parsed {ran_value!r}"))
        for name, again in run.reparsed.items():
            recorded = run.metrics.get(name)
            if recorded is not None and again is not None and abs(float(again) - float(recorded)) > TOLERANCE:
                evidence.append(Evidence(rule="ledger-run-mismatch", value=again,
                                         detail=f"seed {seed}: run {run.id} recorded {name}={recorded!r}, "
                                                f"its output reads {again!r}"))
        if regex:
            printed = sorted(set(metric_values(run.output, regex)))
            if len(printed) > 1:
                evidence.append(Evidence(rule="ambiguous-metric-output", value=", ".join(f"{v:g}" for v in printed[:5]),
                                         detail=f"seed {seed}: run {run.id} printed {primary} with {len(printed)} "
                                                f"different values"))
    mean = sum(seed_scores.values()) / len(seed_scores)
    if abs(mean - score) > 1e-6:
        evidence.append(Evidence(rule="ledger-run-mismatch", value=score,
                                 detail=f"trial score {score!r} is not the mean of its seed scores ({mean!r})"))
    return CheckResult.of(
        "integrity", evidence,
        ok=f"score from {len(seed_scores)} server evaluation run(s) of this commit; ledger matches their output",
        bad="; ".join(e.detail for e in evidence[:3]),
        data={"runs": {str(s): r.id for s, r in by_seed.items() if s in seed_scores}})
