"""Fast tests of the audit tools' ledger side: stored audits, listing, the claims
leaderboard, finalize's preconditions, and the evidence gathered from runs. The
end-to-end behaviour on real runs is in test_audit_cheats.py."""

from __future__ import annotations

from conftest import SIMPLE_CAMPAIGN

from sotalab.tools import ledger
from sotalab.tools.audit import gather
from sotalab.tools.evaluation.seeds import draw


def make_trials(lab, call, scores):
    campaign = call("campaign_create", **SIMPLE_CAMPAIGN)["id"]
    ids = [call("trial_create", campaign=campaign, kind="baseline")["id"]]
    ids += [call("trial_create", campaign=campaign, kind="param")["id"] for _ in scores[1:]]
    for trial, score in zip(ids, scores, strict=True):
        lab.db["trials"].update(trial, {"score": score, "commit_sha": f"commit-of-{trial}"})
    return campaign, ids


def store_audit(lab, campaign, trial, depth, verdict, commit=None):
    return lab.db["audits"].insert({"trial_id": trial, "campaign_id": campaign, "depth": depth, "verdict": verdict,
                                    "commit_sha": commit or f"commit-of-{trial}",
                                    "reason": f"{verdict} because", "checks": ledger.dumps(
                                        [{"name": "diff_rules", "verdict": "fail" if verdict == "invalid" else "pass",
                                          "summary": "s", "evidence": [], "data": {}}]),
                                    "created_at": ledger.now()}).last_pk


def test_claims_leaderboard_counts_only_the_latest_full_audit(lab, call):
    campaign, (base, a, b, c) = make_trials(lab, call, [0.5, 0.9, 0.7, 0.6])
    store_audit(lab, campaign, a, "full", "valid")
    store_audit(lab, campaign, a, "full", "invalid")   # re-audited and failed: no longer a claim
    store_audit(lab, campaign, b, "quick", "valid")    # quick audits never make a claim
    store_audit(lab, campaign, c, "full", "inconclusive")
    store_audit(lab, campaign, c, "full", "valid")
    claims = call("trial_get", ranked=True, campaign=campaign, claims_only=True)["entries"]
    assert [e["trial"]["id"] for e in claims] == [c]
    assert [e["trial"]["id"] for e in call("trial_get", ranked=True, campaign=campaign)["entries"]] == [a, b, c, base]


def test_a_claim_lapses_when_the_trials_code_changes_after_its_audit(lab, call):
    campaign, (_, a) = make_trials(lab, call, [0.5, 0.9])
    store_audit(lab, campaign, a, "full", "valid")
    claims = call("trial_get", ranked=True, campaign=campaign, claims_only=True)["entries"]
    assert [e["trial"]["id"] for e in claims] == [a]
    lab.db["trials"].update(a, {"commit_sha": "a-later-commit"})  # snapshot and re-evaluation after the audit
    assert call("trial_get", ranked=True, campaign=campaign, claims_only=True)["entries"] == []


def test_ranked_claims_only_combines_with_kind(lab, call):
    campaign, (base, a, b) = make_trials(lab, call, [0.5, 0.9, 0.7])
    lab.db["trials"].update(b, {"kind": "code"})
    for trial in (a, b):
        store_audit(lab, campaign, trial, "full", "valid")
    claims = call("trial_get", campaign=campaign, ranked=True, claims_only=True)["entries"]
    assert [e["trial"]["id"] for e in claims] == [a, b]
    coded = call("trial_get", campaign=campaign, ranked=True, claims_only=True, kind="code")["entries"]
    assert [(e["rank"], e["trial"]["id"]) for e in coded] == [(1, b)]
    assert base not in [e["trial"]["id"] for e in claims]


def test_audit_get_one_or_a_page(lab, call, call_error):
    campaign, (_, a, b) = make_trials(lab, call, [0.5, 0.9, 0.7])
    first = store_audit(lab, campaign, a, "quick", "valid")
    second = store_audit(lab, campaign, b, "full", "invalid")
    got = call("audit_get", audit=second)
    assert got["verdict"] == "invalid" and got["checks"][0]["name"] == "diff_rules" and got["trial"] == b
    page = call("audit_get", campaign=campaign, limit=1)
    assert [x["id"] for x in page["audits"]] == [second] and page["total"] == 2
    assert page["audits"][0]["failed"] == ["diff_rules"]
    assert [x["id"] for x in call("audit_get", campaign=campaign, cursor=page["next_cursor"])["audits"]] == [first]
    assert call("audit_get", trial=a, depth="full")["total"] == 0
    assert "no audit with id 999" in call_error("audit_get", audit=999)
    message = call_error("audit_get", audit=first, trial=a)
    assert "trial is a list argument" in message and "drop `audit` to list" in message


def test_finalize_needs_a_valid_full_audit_and_does_not_spend_a_call_without_one(lab, call, call_error):
    campaign, (_, a) = make_trials(lab, call, [0.5, 0.9])
    store_audit(lab, campaign, a, "quick", "valid")
    assert "no trial with a valid full audit of its current commit" in call_error("campaign_finalize",
                                                                                    campaign=campaign)
    assert call("campaign_get", campaign=campaign)["spent"].get("finalize_calls", 0) == 0


def test_audit_needs_evaluated_trials(lab, call, call_error):
    campaign, (_, a) = make_trials(lab, call, [None, None])
    assert "evaluate it first with trial_evaluate" in call_error("audit_trial", trial=a)


def test_audit_seeds_are_drawn_fresh_and_avoid_the_evaluators(monkeypatch):
    monkeypatch.delenv("SOTALAB_SEED_DRAW", raising=False)
    draws = [draw(5, avoid=[0, 1, 2, 3, 4]) for _ in range(3)]
    assert all(len(set(d)) == 5 and not set(d) & {0, 1, 2, 3, 4} for d in draws)
    assert len({tuple(d) for d in draws}) == 3
    monkeypatch.setenv("SOTALAB_SEED_DRAW", "fixed")
    assert draw(3, key="audit:7:0") == draw(3, key="audit:7:0") != draw(3, key="audit:7:1")


def test_leaderboard_ranks_on_the_audited_multi_seed_mean(lab, call):
    campaign, (base, lucky, steady) = make_trials(lab, call, [0.5, 0.9, 0.7])
    # The lucky trial's single evaluation was 0.9; its audit measured 0.62 over 8 seeds.
    lab.db["trials"].update(lucky, {"audited_mean": 0.62, "audited": ledger.dumps(
        {"audit": 1, "mean": 0.62, "interval": [0.01, 0.2], "seeds": 8})})
    entries = call("trial_get", ranked=True, campaign=campaign)["entries"]
    assert [e["trial"]["id"] for e in entries] == [steady, lucky, base]
    assert entries[1]["audited_mean"] == 0.62 and entries[1]["audited_seeds"] == 8


def test_usage_reads_telemetry_params_and_tree_size(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x" * 2_000_000)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "pack").write_bytes(b"x" * 5_000_000)  # history is not an artifact
    runs = [{"status": "succeeded", "telemetry": {"wall_s": 1.5, "peak_rss_mb": 512.0}},
            {"status": "succeeded", "telemetry": {"wall_s": 2.5, "peak_rss_mb": 256.0, "peak_gpu_memory_mb": 1024.0}},
            {"status": "failed", "telemetry": {"wall_s": 99.0}}]
    used = gather.usage(runs, tmp_path, {0: {"params": 484.0}, 1: {"params": 484.0}})
    assert used == {"wall_s": 2.5, "peak_rss_gb": 0.5, "peak_gpu_memory_gb": 1.0,
                    "artifact_mb": 2.0, "params": 484.0}


def test_ledger_seed_metrics_and_means():
    class T:
        metrics = {"accuracy": {"mean": 0.6, "values": {"0": 0.5, "1": 0.7}}, "nll": {"values": {"0": 1.0}}}

    per_seed = gather.ledger_seed_metrics(T)
    assert per_seed == {0: {"accuracy": 0.5, "nll": 1.0}, 1: {"accuracy": 0.7}}
    assert gather.mean_metrics(per_seed) == {"accuracy": 0.6, "nll": 1.0}
    assert gather.mean_metrics(per_seed, [1]) == {"accuracy": 0.7}


def test_a_trials_gitattributes_cannot_hide_its_code_from_the_diff(tmp_path):
    """`*.py -diff` (or `binary`, or a textconv driver) committed by a trial would turn the
    reviewer's and the audit's diff into "Binary files differ"; the lab's info/attributes
    outranks every in-tree file, and real binaries are still told apart by content."""
    from sotalab.tools import gitcmd

    repo = tmp_path / "repo"
    repo.mkdir()
    gitcmd.git(repo, "init", "--quiet")
    (repo / "train.py").write_text("LR = 0.002\n")
    gitcmd.git(repo, "add", "--all")
    gitcmd.git(repo, "commit", "--quiet", "-m", "base")
    (repo / ".gitattributes").write_text("*.py -diff\n")
    (repo / "train.py").write_text("LR = 0.002\nimport metrics\nmetrics.accuracy = lambda a, b: 0.99\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    gitcmd.git(repo, "add", "--all")
    gitcmd.git(repo, "commit", "--quiet", "-m", "trial")
    assert "Binary files a/train.py" in gitcmd.out(repo, "diff", "HEAD~1", "HEAD")  # what the trial wanted
    gitcmd.neutralise_attributes(repo)
    gitcmd.neutralise_attributes(repo)  # idempotent
    diff = gitcmd.out(repo, "diff", "--no-textconv", "--no-ext-diff", "HEAD~1", "HEAD")
    assert "+metrics.accuracy = lambda a, b: 0.99" in diff and "Binary files a/train.py" not in diff
    assert "Binary files /dev/null and b/blob.bin differ" in diff
