"""Fixtures shared by every test: a fresh lab home per test and a way to call tools."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sotalab.tools.errors import LabError
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
# Audits draw their seeds at random; the tests make the draws reproducible (still not
# the evaluator's seeds, and never visible to a run) so a verdict does not hang on luck.
os.environ.setdefault("SOTALAB_SEED_DRAW", "sotalab-tests")


@pytest.fixture
def lab(tmp_path) -> Lab:
    return Lab.open(tmp_path / "lab")


@pytest.fixture
def worktree(lab):
    """A working directory inside the lab's workspaces, where runs may work."""
    path = lab.path("workspaces", "scratch")
    path.mkdir(parents=True)
    return path


@pytest.fixture
def trial_worktree(lab):
    """An open trial's worktree (not the baseline's): the only place run_start lets a run
    work. The campaign has no repository, so the directory is made by hand."""
    from sotalab.tools import workspaces

    cid = invoke(lab, "campaign_create", SIMPLE_CAMPAIGN)["id"]
    invoke(lab, "trial_create", {"campaign": cid, "kind": "baseline"})
    tid = invoke(lab, "trial_create", {"campaign": cid, "kind": "param", "hypothesis": "side runs"})["id"]
    path = workspaces.worktree_path(lab, cid, tid)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def call(lab):
    """call("tool_name", **arguments) -> result dict, through the same path as MCP."""

    def _call(tool_name: str, /, **arguments):
        return invoke(lab, tool_name, arguments)

    return _call


@pytest.fixture
def call_error(lab):
    """call_error("tool_name", **arguments) -> the LabError message the caller would see."""

    def _call_error(tool_name: str, /, **arguments) -> str:
        with pytest.raises(LabError) as info:
            invoke(lab, tool_name, arguments)
        return str(info.value)

    return _call_error


def sotalab_command() -> list[str]:
    """How to start this checkout's `sotalab` console script."""
    script = Path(sys.executable).parent / "sotalab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sotalab.server.cli"]


def require(condition: bool, reason: str):
    """Skip with a reason, except in CI where the missing part is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


SIMPLE_CAMPAIGN = {
    "name": "demo",
    "objective": {"metric": "accuracy", "direction": "max", "reported": 0.8},
    "evaluator": {"command": ["python", "eval.py"], "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
}


