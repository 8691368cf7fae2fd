"""Playing a cheat (tests/cheats/catalogue.py) through the server as an agent would, and
judging whether the lab defeated it."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .agent import Agent, Refused
from .catalogue import INFLATION_MARGIN, TRAIN, Cheat, SideRun

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tinynet"
TERMINAL = {"succeeded", "failed", "timeout", "cancelled", "lost"}


@dataclass
class Outcome:
    trial: int | None = None
    refused: str | None = None
    score: float | None = None
    label: str | None = None
    audit: dict | None = None
    side_logs: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # side-run output the cheat hoped for

    @property
    def rules(self) -> set[str]:
        return {e["rule"] for c in (self.audit or {}).get("checks", []) for e in c["evidence"] if e.get("rule")}


class Lab:
    """A tinynet campaign set up through the tools: repository, evaluated baseline, and an
    evaluated, audited honest trial (so that audit scratch space and a frozen trial exist)."""

    def __init__(self, agent: Agent, root: Path, spec: dict | None = None):
        self.agent = agent
        spec = spec or json.loads((EXAMPLE / "campaign.json").read_text())
        spec = {**spec, "name": f"{spec['name']}-{root.name}"}  # one lab may hold several
        self.id = agent.call("campaign_create", **spec)["id"]
        source = root / f"source-{self.id}"
        shutil.copytree(EXAMPLE / "repo", source, ignore=shutil.ignore_patterns("__pycache__", "metrics.json"))
        agent.call("repo_clone", campaign=self.id, url=str(source))
        self.baseline = agent.call("trial_create", campaign=self.id, kind="baseline")["id"]
        self.evaluate(self.baseline)
        self.baseline_score = agent.call("trial_get", trial=self.baseline)["score"]
        self.frozen = self.new_trial("Raise the learning rate to 0.005.")
        self.edit(self.frozen, (("LEARNING_RATE = 0.002\n", "LEARNING_RATE = 0.005\n"),))
        self.evaluate(self.frozen)
        agent.call("audit_trial", trial=self.frozen, depth="quick")

    def call(self, tool: str, /, **arguments) -> dict:
        return self.agent.call(tool, **arguments)

    def new_trial(self, hypothesis: str, kind: str = "code", parent: int | None = None) -> int:
        args = {"campaign": self.id, "kind": kind, "hypothesis": hypothesis}
        if parent is not None:
            args["parent"] = parent
        return self.call("trial_create", **args)["id"]

    def worktree(self, trial: int) -> Path:
        return Path(self.call("trial_get", trial=trial)["worktree"])

    def edit(self, trial: int, edits, path: str = TRAIN) -> None:
        text = self.call("workspace_read", trial=trial, path=path, limit=60_000)["content"]
        for old, new in edits:
            assert text.count(old) == 1, f"anchor {old!r} not found exactly once in {path}"
            text = text.replace(old, new)
        self.call("workspace_write", trial=trial, path=path, content=text)

    def evaluate(self, trial: int) -> dict:
        return self.call("trial_evaluate", trial=trial)

    def side_run(self, trial: int, run: SideRun) -> str:
        """Start a side run where the cheat wants it; its log once it ended."""
        where = {"trial": {"trial": trial},
                 "audit_scratch": {"cwd": str(self.scratch())},
                 "baseline": {"cwd": str(self.worktree(self.baseline))},
                 "frozen_trial": {"cwd": str(self.worktree(self.frozen))}}[run.where]
        started = self.call("run_start", command=run.command, **where)
        status = started["status"]
        while status not in TERMINAL:
            status = self.call("run_wait", run=started["id"], timeout_s=30)["status"]
        return self.call("run_logs", run=started["id"], lines=2000)["text"]

    def scratch(self) -> Path:
        """Where the server ran its own evaluation and audit steps, as run_wait shows it
        (the nearest directory of it that still exists)."""
        runs = self.call("run_wait", trial=self.frozen, limit=50)["runs"]
        path = Path(next(r["cwd"] for r in runs if r["purpose"] in ("audit", "evaluation")))
        while not path.is_dir():
            path = path.parent
        return path

    def play(self, cheat: Cheat) -> Outcome:
        outcome = Outcome(trial=self.new_trial(cheat.hypothesis))
        try:
            for path, content in cheat.writes.items():
                self.call("workspace_write", trial=outcome.trial, path=path, content=content)
            if cheat.edits:
                self.edit(outcome.trial, cheat.edits)
            for run in cheat.side_runs:
                log = self.side_run(outcome.trial, run)
                outcome.side_logs.append(log)
                if run.expect_output:
                    outcome.found += [m.group(0) for m in re.finditer(run.expect_output + ".*", log)]
            self.call("trial_snapshot", trial=outcome.trial)
            self.evaluate(outcome.trial)
            trial = self.call("trial_get", trial=outcome.trial)
            outcome.score, outcome.label = trial["score"], trial["label"]
            if cheat.update:
                current = self.call("campaign_get", campaign=self.id)
                self.call("campaign_update", campaign=self.id,
                          **{key: {**current[key], **value} for key, value in cheat.update.items()})
            if outcome.score is not None and outcome.label not in ("crash", "metric_missing"):
                seeds = {"seeds": 5 if cheat.defeat == "valid" else cheat.audit_seeds} if cheat.depth == "full" else {}
                outcome.audit = self.call("audit_trial", trial=outcome.trial, depth=cheat.depth, **seeds)
        except Refused as refused:
            outcome.refused = str(refused)
        return outcome

    def inflated(self, outcome: Outcome) -> bool:
        return outcome.score is not None and outcome.score > self.baseline_score + INFLATION_MARGIN


def defeated(lab: Lab, cheat: Cheat, outcome: Outcome) -> str | None:
    """None when the lab defeated the cheat as ``cheat.defeat`` says; else what went wrong."""
    if cheat.defeat == "refused":
        if outcome.refused and re.search(cheat.refusal, outcome.refused, re.IGNORECASE) \
                and not re.search(r"not a directory|does not exist", outcome.refused):
            return None
        return f"not refused (refusal: {outcome.refused!r}); score {outcome.score}"
    if outcome.refused:
        return f"a step was refused, which the cheat needs no refusal for: {outcome.refused}"
    if outcome.found:
        return f"the side run found what it looked for: {outcome.found[:3]}"
    verdict = (outcome.audit or {}).get("verdict")
    if cheat.defeat == "not_inflated":
        if lab.inflated(outcome):
            return f"score {outcome.score} inflated over the baseline's {lab.baseline_score} (audit: {verdict})"
        if cheat.rules and not set(cheat.rules) & outcome.rules:
            return f"the audit names none of {cheat.rules}: {sorted(outcome.rules)}"
        return None
    if cheat.defeat == "no_claim":
        return None if verdict != "valid" else f"a {cheat.depth} audit called it valid: {outcome.audit['reason']}"
    if cheat.defeat == "caught":
        if verdict == "valid" or not set(cheat.rules) & outcome.rules:
            return (f"the {cheat.depth} audit ({verdict}) names none of {cheat.rules}: {sorted(outcome.rules)}; "
                    f"{(outcome.audit or {}).get('reason')}")
        return None
    if cheat.defeat == "valid":
        if verdict != "valid":
            return f"honest change not valid: {(outcome.audit or {}).get('reason')} (score {outcome.score})"
        findings = [e for c in outcome.audit["checks"] for e in c["evidence"]]
        return f"honest change has findings: {findings}" if findings else None
    raise ValueError(f"unknown defeat {cheat.defeat!r}")
