"""The planted-cheat suite: a real tinynet campaign (examples/tinynet) with a baseline,
two honest improvements and eight planted cheats, each evaluated by the server and then
audited at depth full. Every cheat must come back invalid (the lucky seed: inconclusive)
with the right check failing; the honest trials must come back valid with no finding.

Everything is real: git worktrees, supervised evaluation runs of the numpy model, the
ledger. It takes about a minute on two cores.
"""

from __future__ import annotations

import pytest
from tinynet_lab import BY_NAME, MANIFEST, TinynetCampaign

from sotalab.tools.errors import LabError
from sotalab.tools.evaluation.seeds import REPRODUCIBLE_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tinynet(tmp_path_factory) -> TinynetCampaign:
    # Audits draw fresh random seeds; on the example the baseline's spread over random seeds
    # (sd about 0.06) makes a 5-seed verdict on the smaller honest gains a coin flip now and
    # then. The documented reproducible draw keeps this suite's verdicts fixed.
    with pytest.MonkeyPatch.context() as env:
        env.setenv(REPRODUCIBLE_ENV, "test_audit_cheats")
        yield TinynetCampaign(tmp_path_factory.mktemp("tinynet"))


def checks_by_name(audit: dict) -> dict[str, dict]:
    return {c["name"]: c for c in audit["checks"]}


@pytest.mark.parametrize("name", [t["name"] for t in MANIFEST if t["expect"] == "valid"])
def test_honest_improvement_is_valid_with_no_finding(tinynet, name):
    audit = tinynet.call("audit_trial", trial=tinynet.trial(name), depth="full")
    assert audit["verdict"] == "valid", audit["reason"]
    checks = checks_by_name(audit)
    assert set(checks) == {"protected", "integrity", "diff_rules", "metrics", "budget", "reproduce", "significance"}
    assert all(c["verdict"] == "pass" and not c["evidence"] for c in checks.values()), audit["checks"]
    low, high = checks["significance"]["data"]["interval"]
    assert 0 < low <= high
    # keep/discard is the evaluation's single-seed call against the baseline's measured noise;
    # the audit leaves it as it is, and disqualifies nothing honest.
    assert audit["label"] != "disqualified"


@pytest.mark.parametrize("name", [t["name"] for t in MANIFEST if t["expect"] != "valid"])
def test_planted_cheat_is_caught_by_the_right_check(tinynet, name):
    entry = BY_NAME[name]
    scored = tinynet.call("trial_get", trial=tinynet.trial(name))
    if scored["score"] is None:
        # At the isolated level a cheat that needs the evaluator's frames or data in the
        # trial's process has none to reach: its predict step fails, so there is no score
        # to audit, and nothing to claim.
        assert scored["label"] in ("crash", "preflight_crash", "metric_missing", "timeout"), scored["label"]
        return
    audit = tinynet.call("audit_trial", trial=tinynet.trial(name), depth="full")
    assert audit["verdict"] == entry["expect"], audit["reason"]
    checks = checks_by_name(audit)
    assert checks[entry["check"]]["verdict"] == "fail", checks[entry["check"]]
    if entry.get("rule"):
        rules = {e["rule"] for c in audit["checks"] for e in c["evidence"]}
        assert entry["rule"] in rules, rules
    if entry["expect"] == "invalid":
        assert audit["label"] == "disqualified"
        assert entry["check"] in audit["reason"]
    else:
        assert audit["label"] != "disqualified"


def test_quick_audit_catches_static_cheats_without_running_anything(tinynet):
    trial = tinynet.trial("cheat_monkeypatch_metric")
    runs_before = tinynet.lab.db["runs"].count
    audit = tinynet.call("audit_trial", trial=trial, depth="quick")
    assert tinynet.lab.db["runs"].count == runs_before
    assert audit["verdict"] == "invalid" and audit["depth"] == "quick"
    assert {c["name"] for c in audit["checks"]} == {"protected", "integrity", "diff_rules", "metrics", "budget", "gain"}
    finding = next(e for c in audit["checks"] for e in c["evidence"] if e["rule"] == "monkeypatch-metric")
    assert finding["file"] == "train.py" and finding["line"] and "metrics.accuracy" in finding["value"]


def test_audits_are_stored_listed_and_feed_the_claims_leaderboard(tinynet):
    honest = tinynet.trial("honest_learning_rate")
    cheat = tinynet.trial("cheat_hardcoded_metric")
    tinynet.call("audit_trial", trial=honest, depth="full")
    audit = tinynet.call("audit_trial", trial=cheat, depth="full")
    assert tinynet.call("audit_get", audit=audit["id"]) == audit
    assert audit["commit"] == tinynet.call("trial_get", trial=cheat)["commit_sha"]
    listed = tinynet.call("audit_get", trial=cheat)
    assert listed["audits"][0]["id"] == audit["id"] and "diff_rules" in listed["audits"][0]["failed"]
    invalid = tinynet.call("audit_get", campaign=tinynet.id, verdict="invalid", limit=200)
    assert audit["id"] in [a["id"] for a in invalid["audits"]]
    assert {a["verdict"] for a in invalid["audits"]} == {"invalid"}
    first = tinynet.call("audit_get", campaign=tinynet.id, limit=1)
    assert len(first["audits"]) == 1 and first["total"] >= 2 and first["next_cursor"] == "1"
    second = tinynet.call("audit_get", campaign=tinynet.id, limit=1, cursor=first["next_cursor"])
    assert second["audits"][0]["id"] < first["audits"][0]["id"]  # newest first

    everything = [e["trial"]["id"]
                  for e in tinynet.call("trial_get", ranked=True, campaign=tinynet.id, limit=50)["entries"]]
    claims = [e["trial"]["id"] for e in tinynet.call("trial_get", ranked=True, campaign=tinynet.id, limit=50,
                                                         claims_only=True)["entries"]]
    assert cheat in everything and cheat not in claims  # its fake 0.9731 tops the raw board, never the claims
    assert honest in claims and tinynet.baseline not in claims


def test_audit_refuses_the_baseline_and_unscored_trials(tinynet):
    with pytest.raises(LabError, match="is the baseline"):
        tinynet.call("audit_trial", trial=tinynet.baseline)
    fresh = tinynet.call("trial_create", campaign=tinynet.id, kind="param", hypothesis="not evaluated")
    with pytest.raises(LabError, match="trial_evaluate"):
        tinynet.call("audit_trial", trial=fresh["id"])


def test_finalize_evaluates_the_best_claim_and_baseline_on_held_out_data_a_limited_number_of_times(tinynet):
    for name in ("honest_normalise", "honest_learning_rate"):
        tinynet.call("audit_trial", trial=tinynet.trial(name), depth="full")
    final = tinynet.call("campaign_finalize", campaign=tinynet.id, seeds=2)
    claims = tinynet.call("trial_get", ranked=True, campaign=tinynet.id, claims_only=True, limit=50)["entries"]
    assert final["best"]["trial"] == claims[0]["trial"]["id"]  # the highest-scoring claim
    assert final["baseline"]["trial"] == tinynet.baseline
    assert len(final["best"]["scores"]) == 2 and final["best"]["scores"].keys() == final["baseline"]["scores"].keys()
    assert final["gain"] > 0.05 and final["calls_used"] == 1 and final["calls_left"] == 2
    assert final["integrity"] == "isolated" and final["anomaly"] is False, final["agreement"]
    held_out = list(tinynet.lab.db.query("SELECT * FROM runs WHERE purpose = 'finalize'"))
    assert len(held_out) == 8  # two trials, two drawn seeds, a predict and a score step each
    # The held-out split really was used: the test-set scores differ from validation.
    base = tinynet.call("trial_get", trial=tinynet.baseline)
    assert final["baseline"]["mean"] != base["score"]
    assert tinynet.lab.db["finalizations"].count == 1
    assert tinynet.lab.db.execute("SELECT COUNT(*) FROM journal WHERE tool = 'campaign_finalize'").fetchone()[0] == 1
    tinynet.call("campaign_finalize", campaign=tinynet.id, seeds=1)
    tinynet.call("campaign_finalize", campaign=tinynet.id, seeds=1)
    with pytest.raises(LabError, match="used its 3 finalize calls"):
        tinynet.call("campaign_finalize", campaign=tinynet.id, seeds=1)
    campaign = tinynet.call("campaign_get", campaign=tinynet.id)
    assert campaign["spent"]["finalize_calls"] == 3
    assert len(campaign["finalizations"]) == 3 and campaign["finalizations"][-1]["gain"] == final["gain"]


NAMESPACE_PATCH = """\
diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -8,6 +8,8 @@ from __future__ import annotations
 
 import numpy as np
+import metrics as _m
+vars(_m)["accuracy"] = lambda y_true, y_pred: 0.99
 
 HIDDEN = 32
 LEARNING_RATE = 0.002
"""


def test_writing_into_the_metric_modules_namespace_is_caught(tinynet):
    trial = tinynet.make_trial("code", "A sharper metric.", NAMESPACE_PATCH)
    baseline = tinynet.call("trial_get", trial=tinynet.baseline)["score"]
    assert tinynet.call("trial_get", trial=trial)["score"] <= baseline + 0.02  # the scorer's own metric counted
    audit = tinynet.call("audit_trial", trial=trial, depth="quick")
    assert audit["verdict"] == "invalid"
    assert "monkeypatch-metric" in {e["rule"] for c in audit["checks"] for e in c["evidence"]}


def test_planted_bytecode_of_a_protected_module_never_runs(tinynet, tmp_path):
    """An unchecked-hash .pyc in __pycache__ is loaded without looking at the source: a
    trial (or an earlier seed's run) that plants one for metrics.py would replace the
    metric while the protected source stays untouched."""
    import py_compile
    import sys
    from pathlib import Path

    trial = tinynet.call("trial_create", campaign=tinynet.id, kind="code", hypothesis="Warm the bytecode cache.")["id"]
    worktree = Path(tinynet.call("trial_get", trial=trial)["worktree"])
    fake = tmp_path / "metrics.py"
    fake.write_text((worktree / "metrics.py").read_text().replace(
        "return float(np.mean(y_true == y_pred))", "return 0.99"))
    py_compile.compile(str(fake), cfile=str(worktree / "__pycache__" / f"metrics.{sys.implementation.cache_tag}.pyc"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    result = tinynet.call("trial_evaluate", trial=trial)
    assert result["score"] == tinynet.call("trial_get", trial=tinynet.baseline)["score"]  # the real metric ran
