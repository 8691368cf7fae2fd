"""Hostile trials against the bundled example at its own integrity level, each played
through the MCP server exactly as an agent would (tests/cheats/): 28 cheats over the seven
causes of issue #10, each of which must be refused, leave the score uninflated, never
become a claim, or be caught by the audit with evidence; and honest changes (an
internal validation split, a helper module, augmentation, a parent that committed
bytecode) that must stay valid with no finding, through finalize.

Everything is real: the server over the in-memory MCP client, git worktrees and exports,
sandboxed supervised runs of the numpy model, the ledger.
"""

from __future__ import annotations

import hashlib

import pytest
from cheats.agent import Agent
from cheats.catalogue import (CHEATS, FINALIZE_TAMPER, FIT_END, HONEST, MEMORY_PREDICT, MODEL_NEW, NORMALISE,
                              PREDICT, SideRun, after)
from cheats.play import Lab, defeated

pytestmark = pytest.mark.slow

BY_NAME = {c.name: c for c in [*CHEATS, *HONEST]}
# Cheats the lab cannot defeat yet, with the part of issue #10 that defeats them.
PENDING: dict[str, str] = {}


def pending(name: str):
    reason = PENDING.get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else name


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    from sotalab.tools.home import Lab as LabHome

    client = Agent(LabHome.open(tmp_path_factory.mktemp("cheats") / "lab"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def tinynet(agent, tmp_path_factory) -> Lab:
    return Lab(agent, tmp_path_factory.mktemp("sources"))


def test_the_catalogue_covers_every_cause_with_enough_cheats():
    assert len(CHEATS) + 1 >= 25
    assert {c.cause for c in CHEATS} == {1, 2, 3, 4, 5, 6, 7}
    assert len({c.name for c in [*CHEATS, *HONEST, FINALIZE_TAMPER]}) == len(CHEATS) + len(HONEST) + 1


@pytest.mark.parametrize("name", [pending(c.name) for c in CHEATS])
def test_cheat_is_defeated(tinynet, name):
    cheat = BY_NAME[name]
    outcome = tinynet.play(cheat)
    problem = defeated(tinynet, cheat, outcome)
    assert problem is None, f"{name} (cause {cheat.cause}): {problem}"
    if outcome.audit and outcome.audit["verdict"] == "invalid":
        assert outcome.label == "disqualified" or tinynet.call("trial_get", trial=outcome.trial)["label"] == \
            "disqualified"
    claims = tinynet.call("trial_get", ranked=True, campaign=tinynet.id, claims_only=True, limit=50)["entries"]
    assert outcome.trial not in [e["trial"]["id"] for e in claims]


@pytest.mark.parametrize("name", [pending(c.name) for c in HONEST])
def test_honest_change_stays_valid_with_no_finding(tinynet, name):
    cheat = BY_NAME[name]
    outcome = tinynet.play(cheat.__class__(**{**cheat.__dict__, "depth": "full"}))
    problem = defeated(tinynet, cheat, outcome)
    assert problem is None, problem


def test_quick_audit_never_calls_a_worse_trial_valid(tinynet):
    trial = tinynet.new_trial("Lower the learning rate.")
    tinynet.edit(trial, (("LEARNING_RATE = 0.002\n", "LEARNING_RATE = 0.0002\n"),))
    tinynet.evaluate(trial)
    assert tinynet.call("trial_get", trial=trial)["score"] < tinynet.baseline_score
    audit = tinynet.call("audit_trial", trial=trial, depth="quick")
    assert audit["verdict"] != "valid", audit["reason"]
    gain = next(c for c in audit["checks"] if c["name"] == "gain")
    assert gain["verdict"] == "fail" and gain["evidence"][0]["rule"] == "no-gain"


def test_workspace_diff_shows_text_whatever_the_trial_says_about_its_attributes(tinynet):
    trial = tinynet.new_trial("Mark generated files.")
    tinynet.call("workspace_write", trial=trial, path=".gitattributes", content="*.py -diff binary\n")
    tinynet.edit(trial, (after("import numpy as np\n", "import metrics\nmetrics.accuracy = lambda a, b: 0.97\n"),))
    for against in ("parent", "baseline"):
        diff = tinynet.call("workspace_diff", trial=trial, against=against)["diff"]
        assert "Binary files a/train.py" not in diff and "+metrics.accuracy = lambda a, b: 0.97" in diff
    tinynet.side_run(trial, SideRun(["python", "-c", "open('blob.bin', 'wb').write(bytes(range(256)) * 4)"]))
    diff = tinynet.call("workspace_diff", trial=trial, against="baseline")["diff"]  # a real binary file next to it
    assert "+metrics.accuracy = lambda a, b: 0.97" in diff
    audit = tinynet.call("audit_trial", trial=trial, depth="quick") if tinynet.evaluate(trial) else None
    assert audit and {"monkeypatch-metric", "binary-file"} <= {e["rule"] for c in audit["checks"] for e in c["evidence"]}


@pytest.fixture(scope="module")
def sealed(agent, tmp_path_factory) -> Lab:
    """A campaign of its own: finalize calls are few."""
    return Lab(agent, tmp_path_factory.mktemp("sealed"))


def test_finalize_keeps_the_held_out_split_sealed(sealed):
    """An honest gain (standardised features) carrying code that memorises and overwrites
    every held-out copy it can reach: it becomes the claim, and the held-out evaluation
    must still measure the model, not the memory; the held-out files stay as they were."""
    held = sorted(p for p in sealed.worktree(sealed.baseline).parents[1].parent.rglob("*.npz")
                  if "held" in str(p))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in held}
    outcome = sealed.play(FINALIZE_TAMPER.__class__(**{**FINALIZE_TAMPER.__dict__, "depth": "full", "audit_seeds": 8}))
    assert outcome.audit and outcome.audit["verdict"] == "valid", outcome.audit and outcome.audit["reason"]
    final = sealed.call("campaign_finalize", campaign=sealed.id, seeds=2)
    assert final["best"]["trial"] == outcome.trial
    assert final["best"]["mean"] < 0.85, final  # memorised labels would score 1.0
    assert final["gain"] < 0.2, final
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in held} == before


def test_a_claim_that_fails_on_the_held_out_split_is_an_anomaly(agent, tmp_path_factory):
    """An honest gain carrying code that fails (with an innocent-looking error) whenever
    it sees the held-out split: finalize must not just error out and leave the claim
    standing untested, it records the failure as an anomaly."""
    lab = Lab(agent, tmp_path_factory.mktemp("dodge"))
    trial = lab.new_trial("Standardise the features.")
    dodge = ('    import os as _o\n'
             '    if _o.environ.get("SOTALAB_" + "SPLIT") == "held" + "_out":\n'
             '        raise MemoryError("out of memory")\n')
    lab.edit(trial, (after(MODEL_NEW, NORMALISE), (FIT_END, dodge + FIT_END)))
    lab.evaluate(trial)
    assert lab.call("audit_trial", trial=trial, depth="full", seeds=8)["verdict"] == "valid"
    final = lab.call("campaign_finalize", campaign=lab.id, seeds=2)
    assert final["best"]["trial"] == trial and final["anomaly"] is True, final
    assert final["best"]["failed_seeds"] and final["gain"] is None
    assert "held-out-failed" in {e["rule"] for e in final["agreement"]["evidence"]}


def test_a_parent_that_committed_bytecode_still_finalizes(agent, tmp_path_factory):
    lab = Lab(agent, tmp_path_factory.mktemp("pycache"))
    parent = lab.new_trial("Warm the bytecode cache.")
    lab.side_run(parent, SideRun(["python", "-c", "import train, metrics, data"]))
    lab.call("trial_snapshot", trial=parent)
    lab.evaluate(parent)
    child = lab.new_trial("Standardise the features.", parent=parent)
    lab.edit(child, ((PREDICT, MEMORY_PREDICT.lstrip("\n")), after(MODEL_NEW, NORMALISE)))
    lab.evaluate(child)
    audit = lab.call("audit_trial", trial=child, depth="full", seeds=8)  # 5 drawn seeds left it inconclusive on some draws
    assert audit["verdict"] == "valid", audit["reason"]
    final = lab.call("campaign_finalize", campaign=lab.id, seeds=2)
    assert final["best"]["trial"] == child and final["gain"] > 0.03
    assert final["anomaly"] is False, final["agreement"]
