"""A real tinynet campaign (examples/tinynet) in a lab home, for the audit tests and
the audit benchmark: campaign, repository, evaluated baseline, and trials made from the
bundled patches on first use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke

TINYNET = Path(__file__).resolve().parent.parent / "examples" / "tinynet"
MANIFEST = json.loads((TINYNET / "trials.json").read_text())["trials"]
BY_NAME = {t["name"]: t for t in MANIFEST}


class TinynetCampaign:
    def __init__(self, root: Path, spec_file: str = "campaign.json"):
        self.lab = Lab.open(root / "lab")
        spec = json.loads((TINYNET / spec_file).read_text())
        self.id = self.call("campaign_create", **spec)["id"]
        source = root / "tinynet"
        shutil.copytree(TINYNET / "repo", source, ignore=shutil.ignore_patterns("__pycache__", "metrics.json"))
        self.call("repo_clone", campaign=self.id, url=str(source))
        self.baseline = self.call("trial_create", campaign=self.id, kind="baseline")["id"]
        self.call("trial_evaluate", trial=self.baseline)
        self.trials: dict[str, int] = {}

    def call(self, tool: str, /, **arguments):
        return invoke(self.lab, tool, arguments)

    def make_trial(self, kind: str, hypothesis: str, patch: str) -> int:
        """A new trial from the baseline with ``patch`` applied, evaluated by the server."""
        trial = self.call("trial_create", campaign=self.id, kind=kind, hypothesis=hypothesis)["id"]
        self.call("workspace_write", trial=trial, patch=patch)
        self.call("trial_evaluate", trial=trial)
        return trial

    def trial(self, name: str) -> int:
        """The evaluated trial for a trials.json entry, made on first use."""
        if name not in self.trials:
            entry = BY_NAME[name]
            self.trials[name] = self.make_trial(entry["kind"], entry["hypothesis"],
                                                (TINYNET / entry["patch"]).read_text())
        return self.trials[name]
