"""Pure functions of evaluation: read metrics, label a run, summarise seeds, judge.

Nothing here runs anything or touches the ledger, so a score can be re-derived from a
run's stored output at any time (the way SWE-bench grades from saved logs).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from ..campaigns import MetricRule, Objective

PREFLIGHT_WINDOW_S = 10.0
MAX_METRICS_FILE_BYTES = 10_000_000
PREFLIGHT_ERRORS = re.compile(r"\b(SyntaxError|IndentationError|TabError|ImportError|ModuleNotFoundError)\b")
GPU_OOM_SIGNS = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation")
OOM_SIGNS = re.compile(r"\bMemoryError\b|std::bad_alloc|Cannot allocate memory")
# The line a Python traceback ends with ("FileNotFoundError: ...", "subprocess.CalledProcessError: ...").
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b(:.*)?$")
MAX_ERROR_CHARS = 300
# When one seed fails, the trial's label is the first failure in this order.
FAILURE_ORDER = ("protected_violation", "size_blocked", "timeout", "gpu_oom", "oom", "preflight_crash", "crash",
                 "metric_missing")
# Outcomes (written by the supervisor) of runs stopped at a size or time limit.
SIZE_OUTCOMES = ("artifact_exceeded", "disk_exceeded")
TIME_OUTCOMES = ("timeout", "cpu_exceeded")
# Two sided-noise multiplier for "keep": a gain must exceed this many standard errors.
KEEP_Z = 2.0


class MetricSummary(BaseModel):
    mean: float
    std: float | None = Field(description="sample standard deviation over seeds (null for one seed)")
    values: dict[str, float] = Field(description="value per seed")


def extract(rules: Sequence[MetricRule], output: str, workdir: Path | None) -> tuple[dict[str, float], list[str]]:
    """Metric values by the campaign's rules: a regex on the run's output (the last match
    wins; group ``value`` or group 1) or a key in a JSON file written under ``workdir``
    (never outside it). Returns (found, missing)."""
    found: dict[str, float] = {}
    json_cache: dict[str, object] = {}
    for rule in rules:
        value = _by_regex(rule, output) if rule.regex else _by_json(rule, workdir, json_cache)
        if value is not None and math.isfinite(value):
            found[rule.name] = value
    return found, [r.name for r in rules if r.name not in found]


def _by_regex(rule: MetricRule, output: str) -> float | None:
    matches = list(re.finditer(rule.regex, output, re.MULTILINE))
    if not matches:
        return None
    m = matches[-1]
    text = m.group("value") if "value" in m.re.groupindex else (m.group(1) if m.re.groups else m.group(0))
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _by_json(rule: MetricRule, workdir: Path | None, cache: dict) -> float | None:
    if workdir is None:
        return None
    if rule.json_file not in cache:
        cache[rule.json_file] = read_json(workdir, rule.json_file)
    value = cache[rule.json_file]
    for part in (rule.json_key or rule.name).split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_json(workdir: Path, rel: str):
    path = confined(workdir, rel)
    if path is None or not path.is_file() or path.is_symlink():
        return None
    try:
        with open(path, "rb") as handle:  # bounded: the run decides how big the file is
            data = handle.read(MAX_METRICS_FILE_BYTES + 1)
        if len(data) > MAX_METRICS_FILE_BYTES:
            return None
        return json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None


def confined(workdir: Path, rel: str) -> Path | None:
    root = workdir.resolve()
    path = (root / rel).resolve()
    return path if root in path.parents else None


def error_line(output: str) -> str | None:
    """The line that says why a failed run failed: the last exception line of its
    output, else its last non-empty line (bounded; the text is the run's, not ours)."""
    lines = [line.strip() for line in output.splitlines()[-200:] if line.strip()]
    found = next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)), None) or (lines[-1] if lines else None)
    return found[:MAX_ERROR_CHARS] if found else None


def classify(status: str, outcome: str | None, wall_s: float | None, output: str, missing_primary: bool) -> str:
    """The label of one run from how it ended and what it printed ("ok" when it counts)."""
    if outcome in SIZE_OUTCOMES:
        return "size_blocked"
    if status == "timeout" or outcome in TIME_OUTCOMES:
        return "timeout"
    if outcome == "gpu_oom" or (status != "succeeded" and GPU_OOM_SIGNS.search(output)):
        return "gpu_oom"
    if outcome == "oom" or (status != "succeeded" and OOM_SIGNS.search(output)):
        return "oom"
    if status != "succeeded":
        if wall_s is not None and wall_s <= PREFLIGHT_WINDOW_S and PREFLIGHT_ERRORS.search(output):
            return "preflight_crash"
        return "crash"
    return "metric_missing" if missing_primary else "ok"


def summarise(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, MetricSummary]:
    """Mean, spread and values of every metric over the seeds that produced it."""
    names = sorted({name for metrics in per_seed.values() for name in metrics})
    out = {}
    for name in names:
        values = {str(seed): m[name] for seed, m in per_seed.items() if name in m}
        data = list(values.values())
        out[name] = MetricSummary(mean=statistics.fmean(data),
                                  std=statistics.stdev(data) if len(data) > 1 else None, values=values)
    return out


class KeepDecision(BaseModel):
    keep: bool
    test: str = Field(description="how the gain over the reference was judged")
    gain: float | None = Field(description="mean gain over the reference, signed so that positive is better")
    threshold: float | None = Field(description="the gain needed to keep")
    noise_sd: float | None = Field(description="the measured per-seed noise used")


def judge_keep(objective: Objective, trial: Sequence[float], reference: Sequence[float] | None,
               noise: Sequence[float] = ()) -> KeepDecision:
    """Keep only a gain over the reference (the parent) larger than the measured noise.

    Noise is the per-seed spread of the reference itself when it has several seeds, else
    of ``noise`` (the baseline's seeds, e.g. from an audit). The gain must exceed
    ``KEEP_Z`` standard errors of the difference of the two means. With no noise measured
    anywhere the point estimate decides, and the test says so."""
    if not reference:
        return KeepDecision(keep=True, test="no reference: the first score of the lineage", gain=None,
                            threshold=None, noise_sd=None)
    sign = 1.0 if objective.direction == "max" else -1.0
    gain = sign * (statistics.fmean(trial) - statistics.fmean(reference))
    spread = [s for s in (_sd(trial), _sd(reference), _sd(noise)) if s is not None]
    if not spread:
        return KeepDecision(keep=gain > 0, test="point estimate: no seed noise measured yet (evaluate the baseline "
                            "over several seeds to judge gains against noise)", gain=gain, threshold=0.0, noise_sd=None)
    sd = max(spread)
    threshold = KEEP_Z * sd * math.sqrt(1 / len(trial) + 1 / len(reference))
    return KeepDecision(keep=gain > threshold, test=f"noise: gain must exceed {KEEP_Z:g} standard errors "
                        f"(per-seed sd {sd:.3g}, {len(trial)} vs {len(reference)} seed(s))",
                        gain=gain, threshold=threshold, noise_sd=sd)


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


class Reproduction(BaseModel):
    reproduced: bool | None = Field(description="the baseline landed within tolerance of the paper's number "
                                                "(null when the campaign has no reported value)")
    reported: float | None
    measured: float | None
    gap: float | None = Field(description="measured minus reported")
    tolerance: float


def judge_reproduction(objective: Objective, measured: float | None) -> Reproduction:
    """Whether the baseline's score reproduces the paper's reported value."""
    if objective.reported is None or measured is None:
        return Reproduction(reproduced=None, reported=objective.reported, measured=measured, gap=None,
                            tolerance=objective.reproduce_tolerance)
    gap = measured - objective.reported
    return Reproduction(reproduced=abs(gap) <= objective.reproduce_tolerance, reported=objective.reported,
                        measured=measured, gap=gap, tolerance=objective.reproduce_tolerance)
