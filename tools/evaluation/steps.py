"""The runs of an evaluation: the trial's step and the protected scorer's step.

Each step is one supervised, sandboxed run through the run queue; this module builds
its RunRequest and reads back what it produced. Seeds are submitted together, so they
run side by side where the queue has CPU slots or GPUs.

- ``predict`` (isolated level): the trial's code in a fresh export of its commit,
  evaluation inputs only; it writes predictions to ``$SOTALAB_OUTPUT_DIR``.
- ``score`` (isolated level): the campaign's scorer in a fresh export of the baseline,
  never importing trial code; it reads ``$SOTALAB_PREDICTIONS`` (the predict run's
  outputs, read-only) and ``$SOTALAB_LABELS`` (read-only) and reports every metric.
- ``in_process``: the paper's own script in a fresh export of the trial, labels placed
  where the script expects them, under the runtime audit hook (``hook/``), whose
  records reach the run's ``events.jsonl`` through an append-only channel.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import ledger, protected
from ..campaigns import Campaign
from ..errors import LabError
from ..home import Lab
from ..runs import events, logcap, queue
from . import metrics

HOOK_DIR = Path(__file__).resolve().parent / "hook"
STEP_ENV = "SOTALAB_STEP"  # recorded with each run: predict, score or in_process
COMMIT_ENV = "SOTALAB_COMMIT"  # recorded with each run: the trial commit it evaluates
WAIT_SLICE_S = 5.0
POLL_S = 0.02  # an isolated seed waits on two runs in a row: a coarse poll would add up to twice its period


@dataclass
class Environment:
    """How runs of this campaign get their interpreter and packages."""

    description: str
    settings: dict = field(default_factory=dict)  # RunRequest fields: executor/image or path_prefix
    readable: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def environment(lab: Lab, campaign: Campaign) -> Environment:
    """The campaign's environment (venv or Docker image), or the server's own Python."""
    if not campaign.env_id:
        prefix = str(Path(sys.executable).parent)
        return Environment(f"server python {sys.executable}", {"path_prefix": [prefix]})
    from .. import envs

    env = envs.get_env(lab, campaign.env_id)
    if env.status != "ready" or not env.location:
        raise LabError(f"campaign environment {env.id} is {env.status}, not ready",
                       hint="see env_get, then rebuild it with env_build")
    if env.backend == "docker":
        return Environment(f"docker image {env.location}", {"executor": "docker", "image": env.location})
    bin_dir = str(envs.python_path(lab, env.id).parent)
    return Environment(f"venv {env.location}", {"path_prefix": [bin_dir]}, [env.location],
                       {"VIRTUAL_ENV": env.location})


@dataclass
class Step:
    """One submitted run of an evaluation step."""

    kind: str  # predict | score | in_process
    seed: int
    run_id: int
    workdir: Path  # where the step ran; JSON metric files are read from here


@dataclass
class StepResult:
    step: Step
    row: dict
    output: str
    label: str  # ok, or the failure label
    metrics: dict[str, float]
    missing: list[str]


class Runner:
    """Submits one evaluation's steps with the campaign's environment and budgets."""

    def __init__(self, lab: Lab, campaign: Campaign, trial_id: int, commit: str, purpose: str, split: str):
        self.lab, self.campaign, self.trial_id, self.commit = lab, campaign, trial_id, commit
        self.purpose, self.split = purpose, split
        self.env = environment(lab, campaign)
        budgets, evaluator = campaign.budgets, campaign.evaluator
        self.wall_s = min(evaluator.timeout_s, budgets.run_wall_s or evaluator.timeout_s)

    def _submit(self, kind: str, argv: list[str], cwd: Path, seed: int, env: dict[str, str],
                readable: list[str], events: bool = False) -> Step:
        evaluator, budgets = self.campaign.evaluator, self.campaign.budgets
        argv = list(argv) + ([evaluator.seed_arg, str(seed)] if evaluator.seed_arg else [])
        run_env = {**self.env.env, **env, evaluator.seed_env: str(seed), "SOTALAB_SPLIT": self.split,
                   STEP_ENV: kind, COMMIT_ENV: self.commit, "PYTHONDONTWRITEBYTECODE": "1"}
        run_id = queue.submit(self.lab, queue.RunRequest(
            argv=argv, cwd=str(cwd), env=run_env, readable=[*self.env.readable, *readable],
            gpus="auto" if kind != "score" else 0, wall_s=self.wall_s, memory_gb=budgets.memory_gb,
            gpu_memory_gb=budgets.gpu_memory_gb if kind != "score" else None, artifact_mb=budgets.artifact_mb,
            campaign_id=self.campaign.id, trial_id=self.trial_id, purpose=self.purpose, seed=seed,
            events=events, **self.env.settings))
        return Step(kind, seed, run_id, cwd)

    def predict(self, export: Path, seed: int, held_out_inputs: Path | None) -> Step:
        env, readable = {}, []
        if held_out_inputs is not None:
            env["SOTALAB_HELD_OUT"] = str(held_out_inputs)
            readable.append(str(held_out_inputs))
        return self._submit("predict", self.campaign.evaluator.predict, export, seed, env, readable)

    def score(self, scorer_export: Path, seed: int, predictions: Path, labels: Path) -> Step:
        env = {"SOTALAB_PREDICTIONS": str(predictions), "SOTALAB_LABELS": str(labels)}
        return self._submit("score", self.campaign.evaluator.score, scorer_export, seed, env,
                            [str(predictions), str(labels)])

    def in_process(self, export: Path, seed: int, held_out: Path | None) -> Step:
        regexes = [m.regex for m in self.campaign.evaluator.metrics if m.regex]
        env = {"PYTHONPATH": str(HOOK_DIR), "SOTALAB_HOOK_ROOT": str(export),
               "SOTALAB_METRIC_REGEX": json.dumps(regexes)}
        readable = [str(HOOK_DIR)]
        if held_out is not None:
            env["SOTALAB_HELD_OUT"] = str(held_out)
            readable.append(str(held_out))
        return self._submit("in_process", self.campaign.evaluator.command, export, seed, env, readable,
                            events=True)

    def wait(self, step: Step, progress) -> StepResult:
        """Block until the step's run ends; read its metrics and label it."""
        while True:
            row = queue.wait(self.lab, step.run_id, WAIT_SLICE_S, poll_s=POLL_S)
            if row["status"] in queue.TERMINAL:
                break
            progress(f"seed {step.seed}: {step.kind} run {step.run_id} {row['status']}")
        output = logcap.read_text(Path(row["run_dir"]))
        found, missing = ({}, []) if step.kind == "predict" else \
            metrics.extract(self.campaign.evaluator.metrics, output, step.workdir)
        if step.kind == "in_process":
            found, missing = self._printed_by_evaluator(Path(row["run_dir"]), found, missing)
        wall = (ledger.loads(row["telemetry"], {}) or {}).get("wall_s")
        primary_missing = self.campaign.objective.metric in missing
        label = metrics.classify(row["status"], row["outcome"], wall, output, primary_missing)
        if step.kind != "predict":
            self.lab.db["runs"].update(step.run_id, {"metrics": ledger.dumps(found)})
        return StepResult(step, row, output, label, found, missing)


    def _printed_by_evaluator(self, run_dir: Path, found: dict[str, float],
                              missing: list[str]) -> tuple[dict[str, float], list[str]]:
        """In one interpreter, trial code can print a metric line after the evaluator's
        (an atexit handler, a thread, os.write): a regex metric counts only when the
        runtime hook saw the evaluator's own code print that value. Only the hook's own
        records of the process the run started say so (``events.read`` authenticates
        them): the trial can write records into the channel too, and sign them for a
        process of its own making."""
        records = events.read(run_dir)
        if not any(r.get("ev") == "start" for r in records):
            return found, missing  # not a Python evaluator: no hook, the runtime check says so
        evaluator_code = [*self.campaign.protected_paths, *self.campaign.evaluator.scripts]
        entry = [a for a in self.campaign.evaluator.command or [] if a.endswith(".py")]

        def evaluators_own(record: dict) -> bool:
            """Printed by evaluator code with no trial code anywhere on the way, on the path
            of the evaluator's own script (trial code can call the evaluator's reporting
            function with numbers of its choosing, or have atexit call it)."""
            files = [str(f or "").rsplit(":", 1)[0] for f in [record.get("by"), *(record.get("chain") or [])]]
            return (bool(record.get("by")) and all(protected.matches(f, evaluator_code) for f in files)
                    and (not entry or any(f in entry for f in files)))

        printed = "\n".join(str(r.get("text", "")) for r in records if r.get("ev") == "metric_print"
                            and r.get("auth") == "verified" and r.get("root") and evaluators_own(r))
        by_evaluator, _ = metrics.extract([m for m in self.campaign.evaluator.metrics if m.regex], printed, None)
        disowned = [name for name, value in found.items()
                    if any(m.name == name and m.regex for m in self.campaign.evaluator.metrics)
                    and by_evaluator.get(name) != value]
        return ({k: v for k, v in found.items() if k not in disowned},
                [m.name for m in self.campaign.evaluator.metrics if m.name in missing or m.name in disowned])


def outputs_of(row: dict) -> Path:
    """A run's output directory ($SOTALAB_OUTPUT_DIR)."""
    return Path(row["run_dir"]) / "out"


def refuse_links(directory: Path) -> list[str]:
    """Remove every symlink and special file under a predict run's outputs; return them.

    The scorer reads predictions in a sandbox where the labels are mounted: a link named
    like a predictions file could point the scorer at the labels themselves."""
    removed = []
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                removed.append(str(path.relative_to(directory)))
                path.unlink()
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return removed
