"""campaign_view and the committed workspace_diff, the dashboard's data: bounded on big campaigns,
honest about what they leave out, clear when asked for what does not exist."""

from __future__ import annotations

import json

import pytest

from sotalab.tools import ledger
from sotalab.tools.invoke import MAX_RESULT_CHARS


def seed_campaign(lab, call, trials: int, hypothesis_chars: int) -> tuple[int, int]:
    cid = call("campaign_create", name="big", objective={"metric": "acc", "direction": "max", "reported": 0.5},
               evaluator={"command": ["true"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]})["id"]
    base = call("trial_create", campaign=cid, kind="baseline")["id"]
    stamp = ledger.now()
    rows = [{"id": base + 1 + i, "campaign_id": cid, "parent_id": base, "kind": "param", "status": "evaluated",
             "hypothesis": ("x" * hypothesis_chars), "depth": 1, "label": "keep", "score": 0.6,
             "seed_scores": json.dumps({str(s): 0.6 for s in range(20)}), "cost": json.dumps({"runs": list(range(200))}),
             "evaluated_at": stamp, "created_at": stamp, "updated_at": stamp} for i in range(trials)]
    with lab.db.conn:
        lab.db["trials"].insert_all(rows)
    return cid, base


def test_a_big_campaign_view_stays_under_the_cap_and_says_what_it_left_out(lab, call):
    cid, base = seed_campaign(lab, call, trials=400, hypothesis_chars=4000)
    view = call("campaign_view", campaign=cid)
    assert len(json.dumps(view, ensure_ascii=False)) < MAX_RESULT_CHARS
    ids = [t["id"] for t in view["trials"]]
    assert ids[0] == base and ids[-1] == base + 400, "the baseline and the newest trial are always there"
    assert ids == sorted(ids)
    assert view["trials_omitted"] == 401 - len(ids) > 0
    assert all(len(t["hypothesis"]) <= 300 for t in view["trials"])
    assert all(t["integrity"] == "unknown" for t in view["trials"]), "the ledger says nothing: unknown, not a guess"
    few = call("campaign_view", campaign=cid, max_trials=5)
    assert [t["id"] for t in few["trials"]] == [base, *range(base + 396, base + 401)]  # the 5 newest and the baseline


def test_committed_diff_needs_a_snapshot_and_an_existing_trial(lab, call, call_error):
    cid, base = seed_campaign(lab, call, trials=0, hypothesis_chars=0)
    assert "has no snapshot yet" in call_error("workspace_diff", trial=base, committed=True)
    assert "trial_snapshot" in call_error("workspace_diff", trial=base, committed=True)
    assert "no trial with id 987654" in call_error("workspace_diff", trial=987654, committed=True)
    assert "no campaign with id 987654" in call_error("campaign_view", campaign=987654)


@pytest.mark.parametrize("bad", [{"campaign": "one"}, {"campaign": 1, "max_trials": 0}, {"campaign": 1, "extra": 1}])
def test_bad_arguments_are_clear(call_error, bad):
    message = call_error("campaign_view", **bad)
    assert "campaign_view" in message
