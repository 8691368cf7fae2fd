"""Hostile trials at the in_process level (examples/tinynet/campaign_in_process.json: the
paper's own script trains and scores in one process, under the runtime hook), played
through the MCP server as an agent would. Here the cheats run beside the metric, so each
must be caught with evidence: a runtime finding at the trial's file and line where the
cheat acts at run time, a diff rule where it is visible in the code. A cheat that prints
the metric line in the evaluator's place gets no score at all (the hook records who
printed it), which leaves nothing to audit.
"""

from __future__ import annotations

import json

import pytest
from cheats.agent import Agent
from cheats.catalogue import CAUGHT_IN_PROCESS as CAUGHT
from cheats.catalogue import CHEATS, HONEST
from cheats.play import EXAMPLE, Lab

pytestmark = pytest.mark.slow

BY_NAME = {c.name: c for c in [*CHEATS, *HONEST]}
# Caught where no frame of the trial is on record: a process nothing names the starter of.
UNLOCATED = {"validation_read_in_spawned_child"}
# Cheats the lab cannot catch yet at this level, with what would catch them.
PENDING: dict[str, str] = {}


def pending(name: str):
    reason = PENDING.get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else name


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> Lab:
    from sotalab.tools.home import Lab as LabHome

    agent = Agent(LabHome.open(tmp_path_factory.mktemp("in-process") / "lab"))
    yield Lab(agent, tmp_path_factory.mktemp("sources"),
              json.loads((EXAMPLE / "campaign_in_process.json").read_text()))
    agent.close()


@pytest.mark.parametrize("name", [pending(n) for n in CAUGHT])
def test_cheat_is_caught_with_evidence(in_process, name):
    cheat = BY_NAME[name]
    outcome = in_process.play(cheat.__class__(**{**cheat.__dict__, "depth": "quick"}))
    if outcome.score is None:
        # The metric line the cheat printed in the evaluator's place was not the evaluator's
        # own (the hook saw who printed it), so the run has no score at all: nothing to audit.
        assert outcome.label == "metric_missing", (name, outcome.label, outcome.refused)
        return
    assert outcome.audit, f"{name}: no audit ({outcome.refused or outcome.label})"
    assert outcome.audit["integrity"] == "in_process"
    assert outcome.audit["verdict"] == "invalid", outcome.audit["reason"]
    found = [e for c in outcome.audit["checks"] for e in c["evidence"] if e["rule"] == CAUGHT[name]]
    assert found, (CAUGHT[name], sorted(outcome.rules))
    if CAUGHT[name].startswith("runtime-") and CAUGHT[name] != "runtime-builtins" and name not in UNLOCATED:
        assert any(e["file"] and e["line"] for e in found), found  # the trial's file and line


@pytest.mark.parametrize("name", [c.name for c in HONEST])
def test_honest_change_has_no_runtime_finding(in_process, name):
    outcome = in_process.play(BY_NAME[name])
    assert outcome.audit and outcome.audit["verdict"] != "invalid", outcome.audit and outcome.audit["reason"]
    runtime = next(c for c in outcome.audit["checks"] if c["name"] == "runtime")
    assert runtime["verdict"] == "pass" and not runtime["evidence"], runtime
