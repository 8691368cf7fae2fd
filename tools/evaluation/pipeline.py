"""``evaluate``: export -> seeds -> predict -> score -> record, the one scoring path.

``trial_evaluate``, the audit and ``campaign_finalize`` all call ``evaluate``; they
differ only in ``split`` (validation, or the sealed held-out split) and ``purpose``
(evaluation records the score; audit and finalize only return it). Every seed runs in
its own fresh export of the trial's committed snapshot, never its worktree, and the
export is deleted afterwards; the scorer runs from its own fresh export of the baseline.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .. import campaigns, ledger, protected, trials, workspaces
from ..campaigns import Campaign, MetricRule
from ..errors import InvalidInput, LabError
from ..home import Lab
from ..registry import Progress, no_progress, tool
from ..runs import events
from . import export, metrics, record
from .metrics import KeepDecision, MetricSummary, Reproduction
from .steps import Runner, StepResult, outputs_of, refuse_links

Split = Literal["validation", "held_out"]
Purpose = Literal["evaluation", "audit", "finalize"]


class SeedRun(BaseModel):
    seed: int
    run_ids: list[int] = Field(description="the runs of this seed: predict then score (isolated), or the one "
                                           "in_process run")
    label: str = Field(description="ok, or the failure label of this seed")
    reason: str | None
    error: str | None = Field(None, description="a failed seed's last exception line from its run's log (the run's "
                                                "own text; run_logs has the rest, env_diagnose classifies it)")
    metrics: dict[str, float]
    missing: list[str] = Field(description="metrics the rules did not find")
    disowned: list[str] = Field(default_factory=list, description="metrics the output shows but code outside the "
                                "evaluator printed (a library, the repository's own script): not counted; the "
                                "evaluator script must print them itself (docs/real-repos.md)")
    telemetry: dict = Field(default_factory=dict, description="the trial step's telemetry summary")
    protected_changed: list[str] = Field(default_factory=list,
                                         description="protected files the run changed or deleted in its export")
    refused: list[str] = Field(default_factory=list, description="entries left out of the export (bytecode, "
                                                                 "escaping symlinks) or removed from the predictions")
    events: int | None = Field(None, description="runtime evidence records (in_process level)")


class EvaluationResult(BaseModel):
    trial: int
    campaign: int
    purpose: str
    split: str
    integrity: str = Field(description="isolated or in_process")
    label: str
    score: float | None = Field(description="primary metric, mean over seeds (null when a seed failed)")
    score_std: float | None
    metric: str
    direction: str
    seeds: list[int]
    seed_scores: dict[str, float]
    failed_seeds: list[int] = Field(description="seeds that crashed, timed out or gave no primary metric")
    metrics: dict[str, MetricSummary]
    delta_parent: float | None
    delta_baseline: float | None
    keep: KeepDecision | None = Field(description="the test that decided keep or discard (recorded evaluations)")
    reproduction: Reproduction | None = Field(description="the baseline's reproduction of the paper's number")
    restored_files: list[str] = Field(description="protected files the trial's commit had changed, restored in the export")
    recorded: bool
    runs: list[SeedRun]
    gpu_hours: float = Field(description="GPU-hours charged to the campaign for this evaluation")
    commit_sha: str
    environment: str


class Sealed:
    """The directories a split's steps mount: the trial's step never gets labels."""

    def __init__(self, lab: Lab, campaign: Campaign, split: str, workdir: Path):
        held = workspaces.held_out_dir(lab, campaign.id)
        if split == "validation":
            self.inputs, self.labels = None, workspaces.labels_dir(lab, campaign.id)
            self.in_process_labels = self.labels  # placed into the export, where the paper's script reads them
            self.held_out_all = None
            return
        if not held.is_dir() or not protected.repo_files(held):
            raise LabError(f"campaign {campaign.id} has no held-out files",
                           hint="declare held_out_paths before repo_clone; the split is fixed at clone time")
        files = protected.repo_files(held)
        self.held_out_all = held
        self.in_process_labels = workspaces.labels_dir(lab, campaign.id)
        self.inputs = _link_subset(held, workdir / "held_out_inputs",
                                   [f for f in files if not protected.matches(f, campaign.label_paths)])
        self.labels = _link_subset(held, workdir / "held_out_labels",
                                   [f for f in files if protected.matches(f, campaign.label_paths)])


def _link_subset(source: Path, dest: Path, rels: list[str]) -> Path:
    """``rels`` of ``source`` under ``dest`` (hard links where the filesystem allows)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in rels:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / rel).is_symlink():
            continue  # a link inside the sealed split is never followed into a run
        try:
            os.link(source / rel, target)
        except OSError:
            shutil.copy2(source / rel, target)
    return dest


def evaluate(lab: Lab, trial_id: int, *, split: Split = "validation", purpose: Purpose = "evaluation",
             seeds: list[int] | None = None, progress: Progress = no_progress) -> EvaluationResult:
    """Score the trial's committed snapshot over ``seeds`` (default: the evaluator's).

    ``purpose="evaluation"`` (validation only) records the score, label and spend on the
    trial; ``audit`` and ``finalize`` only return the result. GPU time is charged to the
    campaign whatever the purpose."""
    trial = trials.load(lab, trial_id)
    campaign = campaigns.load(lab, trial.campaign_id)
    recording = purpose == "evaluation"
    if recording and split != "validation":
        raise InvalidInput("only a validation evaluation is recorded as a trial's score")
    if not trial.commit_sha:
        raise LabError(f"trial {trial.id} has no committed snapshot",
                       hint="snapshot it with trial_snapshot: evaluations run the committed code only")
    record.check_budget(lab, campaign, trial)
    seeds = list(dict.fromkeys(seeds or campaign.evaluator.seeds))
    if recording:
        record.claim(lab, trial)
    workdir = lab.path("evals", f"{trial.id}-{purpose}-{secrets.token_hex(6)}")
    try:
        workdir.mkdir(parents=True)
        seed_runs, restored, env_desc = _run(lab, campaign, trial, split, purpose, seeds, workdir, progress)
    except BaseException:
        if recording:
            record.release(lab, trial)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = _judge(lab, campaign, trial, split, purpose, seeds, seed_runs, restored, env_desc)
    record.charge(lab, campaign.id, trial, result.gpu_hours, counts_as_trial=recording)
    if recording:
        record.score(lab, trial, result)
    progress(len(seeds), len(seeds), f"label {result.label}, score {result.score}")
    return result


def _run(lab: Lab, campaign: Campaign, trial: trials.Trial, split: str, purpose: str, seeds: list[int],
         workdir: Path, progress: Progress) -> tuple[list[SeedRun], list[str], str]:
    """Every seed's steps, submitted together; returns the seed runs, the protected files
    the commit had changed, and the environment used."""
    repo = workspaces.require_repo(lab, campaign.id)
    store = workspaces.current_store(lab, campaign.id)
    sealed = Sealed(lab, campaign, split, workdir)
    runner = Runner(lab, campaign, trial.id, trial.commit_sha, purpose, split)
    isolated = campaign.evaluator.integrity == "isolated"
    total = len(seeds)
    note = lambda message: progress(done[0], total, message)  # noqa: E731 - progress with the current count
    done = [0]
    exports, steps, restored = {}, {}, []
    objects = export.read(repo, trial.commit_sha)  # once: every seed gets its own fresh export from it
    for seed in seeds:
        made = export.export_commit(repo, trial.commit_sha, workdir / f"seed-{seed}" / "trial", store, objects)
        exports[seed], restored = made, made.restored
        if isolated:
            steps[seed] = runner.predict(made.root, seed, sealed.inputs)
        else:
            _place(sealed.in_process_labels, made.root)
            steps[seed] = runner.in_process(made.root, seed, sealed.held_out_all)
    del objects
    note(f"{total} seed(s) submitted")
    first: dict[int, StepResult] = {seed: runner.wait(step, note) for seed, step in steps.items()}
    scored: dict[int, StepResult] = {}
    refused: dict[int, list[str]] = {seed: list(exports[seed].refused) for seed in seeds}
    if isolated:
        pending = {}
        baseline = workspaces.baseline_commit(lab, campaign.id)  # only the scorer runs from it
        scorer_objects = None
        for seed, result in first.items():
            if result.label != "ok" and result.label != "metric_missing":
                continue
            predictions = outputs_of(result.row)
            refused[seed] += [f"predictions/{p}" for p in refuse_links(predictions)]
            scorer_objects = scorer_objects or export.read(repo, baseline)
            scorer = export.export_commit(repo, baseline, workdir / f"seed-{seed}" / "scorer", store, scorer_objects)
            pending[seed] = runner.score(scorer.root, seed, predictions, sealed.labels)
        scored = {seed: runner.wait(step, note) for seed, step in pending.items()}
    seed_runs = []
    for seed in seeds:
        trial_step, score_step = first[seed], scored.get(seed)
        changed = _tampered(exports[seed].root, store) if not isolated else []
        seed_runs.append(_seed_run(seed, trial_step, score_step, isolated, changed, refused[seed],
                                   campaign.evaluator.metrics))
        done[0] += 1
    return seed_runs, restored, runner.env.description


def _place(source: Path | None, dest: Path) -> None:
    """Copy sealed files into an in_process export, at their repository paths."""
    if source is None or not source.is_dir():
        return
    for rel in protected.repo_files(source):
        if (source / rel).is_symlink():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)


def _tampered(root: Path, store: Path) -> list[str]:
    """Protected files an in_process run changed or deleted in its export."""
    check = protected.verify(root, store)
    return sorted(check.changed + check.deleted)


def _disowned(rules: list[MetricRule], step: StepResult) -> list[str]:
    """Regex metrics the run's output shows that the evaluator's own code did not print
    (``Runner.wait`` left them out): the result names them, or a user sees the line in the
    log and cannot tell why the seed is metric_missing."""
    printed, _ = metrics.extract([rule for rule in rules if rule.regex], step.output, None)
    return sorted(name for name in printed if name not in step.metrics)


def _seed_run(seed: int, trial_step: StepResult, score_step: StepResult | None, isolated: bool,
              tampered: list[str], refused: list[str], rules: list[MetricRule]) -> SeedRun:
    telemetry = ledger.loads(trial_step.row["telemetry"], {}) or {}
    if isolated:
        if trial_step.label not in ("ok", "metric_missing"):
            label, final = trial_step.label, trial_step
        elif score_step is None:
            label, final = "metric_missing", trial_step
        else:
            final = score_step
            # A scorer that fails on what the trial wrote is the trial's failure to predict.
            label = score_step.label if score_step.label != "crash" else "metric_missing"
        found, missing = (score_step.metrics, score_step.missing) if score_step else ({}, [])
        run_ids = [trial_step.step.run_id] + ([score_step.step.run_id] if score_step else [])
        n_events, disowned = None, []
    else:
        final, label = trial_step, trial_step.label
        found, missing = trial_step.metrics, trial_step.missing
        disowned = _disowned(rules, trial_step)
        run_ids = [trial_step.step.run_id]
        n_events = len(events.read(Path(trial_step.row["run_dir"])))
    if tampered:
        label = "protected_violation"
    error = metrics.error_line(final.output) if label != "ok" and final.row["status"] != "succeeded" else None
    return SeedRun(seed=seed, run_ids=run_ids, label=label, reason=final.row["reason"], error=error, metrics=found,
                   missing=missing, disowned=disowned, telemetry=telemetry, protected_changed=tampered, refused=refused,
                   events=n_events)


def _judge(lab: Lab, campaign: Campaign, trial: trials.Trial, split: str, purpose: str, seeds: list[int],
           seed_runs: list[SeedRun], restored: list[str], env_desc: str) -> EvaluationResult:
    objective = campaign.objective
    failed = [r.seed for r in seed_runs if r.label != "ok"]
    summaries = metrics.summarise({r.seed: r.metrics for r in seed_runs if r.label == "ok"})
    primary = summaries.get(objective.metric)
    score = primary.mean if primary and not failed else None
    score_std = primary.std if primary and not failed else None
    parent = trials.load(lab, trial.parent_id) if trial.parent_id else None
    baseline_id = campaign.baseline_trial_id
    baseline = trials.load(lab, baseline_id) if baseline_id and baseline_id != trial.id else None
    delta_parent = score - parent.score if score is not None and parent and parent.score is not None else None
    if score is not None and baseline_id == trial.id:
        delta_baseline = 0.0
    elif score is not None and baseline and baseline.score is not None:
        delta_baseline = score - baseline.score
    else:
        delta_baseline = None
    keep = reproduction = None
    if restored:
        label = "protected_violation"
    elif failed:
        label = min((r.label for r in seed_runs if r.label != "ok"), key=metrics.FAILURE_ORDER.index)
    else:
        reference = parent if parent and parent.score is not None else baseline
        ref_scores = list((reference.seed_scores or {}).values()) if reference and reference.score is not None else []
        keep = metrics.judge_keep(objective, list(primary.values.values()), ref_scores, baseline_noise(lab, campaign))
        label = "keep" if keep.keep else "discard"
    if trial.kind == "baseline" and purpose == "evaluation":
        reproduction = metrics.judge_reproduction(objective, score)
    gpu_hours = sum(r.telemetry.get("gpu_s") or 0.0 for r in seed_runs) / 3600
    return EvaluationResult(
        trial=trial.id, campaign=campaign.id, purpose=purpose, split=split, integrity=campaign.evaluator.integrity,
        label=label, score=score, score_std=score_std, metric=objective.metric, direction=objective.direction,
        seeds=seeds, seed_scores=primary.values if primary else {}, failed_seeds=failed, metrics=summaries,
        delta_parent=delta_parent, delta_baseline=delta_baseline, keep=keep, reproduction=reproduction,
        restored_files=restored, recorded=purpose == "evaluation", runs=seed_runs, gpu_hours=round(gpu_hours, 6),
        commit_sha=trial.commit_sha, environment=env_desc)


def baseline_noise(lab: Lab, campaign: Campaign) -> list[float]:
    """The baseline's per-seed scores, from its own evaluation when it ran several seeds,
    else from the newest full audit that measured it."""
    if campaign.baseline_trial_id is None:
        return []
    baseline = trials.load(lab, campaign.baseline_trial_id)
    own = list((baseline.seed_scores or {}).values())
    if len(own) > 1:
        return own
    for row in lab.db.query("SELECT checks FROM audits WHERE campaign_id = ? AND depth = 'full' ORDER BY id DESC "
                            "LIMIT 5", [campaign.id]):
        for check in ledger.loads(row["checks"], []) or []:
            scores = ((check or {}).get("data") or {}).get("baseline_scores") if isinstance(check, dict) else None
            if isinstance(scores, list) and len(scores) > 1:
                return [float(s) for s in scores]
    return []


class TrialEvaluateIn(BaseModel):
    trial: int
    seeds: list[int] | None = Field(None, min_length=1, max_length=64, description="default: the evaluator's")


@tool(job=True)
def trial_evaluate(lab: Lab, args: TrialEvaluateIn, progress: Progress) -> EvaluationResult:
    """Score a trial: snapshot it, run the campaign's evaluator once per seed.

    Score a trial: commit its worktree (trial_snapshot), then run the campaign's evaluator on a fresh export of
    that commit once per seed, at the campaign's integrity level (isolated: the trial predicts without labels and
    the protected scorer computes the metrics; in_process: the paper's script under a runtime audit hook), and
    record per-seed metrics, mean and spread, deltas, the label with the test that decided it, and the cost."""
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise InvalidInput("seeds repeat", hint="give each seed once")
    trial = trials.load(lab, args.trial)
    if trial.status == "evaluating":
        raise LabError(f"trial {trial.id} is being evaluated already",
                       hint="wait for that evaluation; a trial left evaluating by a server that died is reopened "
                            "when the server starts")
    workspaces.snapshot(lab, args.trial)
    return evaluate(lab, args.trial, seeds=args.seeds, progress=progress)
