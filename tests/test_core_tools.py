"""The core lab tools, called as plain functions through the shared invoke path (no MCP)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from conftest import SIMPLE_CAMPAIGN
from sotalab.tools import ledger, trials
from sotalab.tools.home import Lab, resolve_home
from sotalab.tools.registry import all_tools


def make_campaign(call, **overrides):
    return call("campaign_create", **(SIMPLE_CAMPAIGN | overrides))


def ledger_snapshot(lab):
    tables = ("campaigns", "trials", "ideas", "notes", "audits", "runs")
    return {t: list(lab.db.query(f"SELECT * FROM {t}")) for t in tables}


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("SOTALAB_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "flag") == (tmp_path / "flag").resolve()
    assert resolve_home(None) == (tmp_path / "env").resolve()
    monkeypatch.delenv("SOTALAB_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert resolve_home(None) == (tmp_path / "user" / ".local" / "share" / "sotalab").resolve()


def test_home_is_created_with_ledger_and_folders(tmp_path):
    lab = Lab.open(tmp_path / "fresh")
    lab.db  # first use creates the ledger
    for name in ("lab.db", "papers", "workspaces", "envs", "runs"):
        assert (lab.home / name).exists()
    assert lab.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert lab.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert ledger.schema_version(lab.db) == len(ledger.MIGRATIONS)


def test_migrations_run_forward_once(tmp_path, monkeypatch):
    lab = Lab.open(tmp_path / "home")
    applied = []
    monkeypatch.setattr(ledger, "MIGRATIONS", [*ledger.MIGRATIONS,
                                               ("9999_probe", lambda db: applied.append(db.execute("SELECT 1").fetchone()))])
    again = Lab.open(tmp_path / "home")
    assert ledger.schema_version(again.db) == len(ledger.MIGRATIONS)
    Lab.open(tmp_path / "home").db
    assert len(applied) == 1, "a migration must apply exactly once"
    assert lab.db.execute("SELECT name FROM schema_migrations ORDER BY version DESC").fetchone()[0] == "9999_probe"


def test_campaign_roundtrip_and_update(call):
    created = make_campaign(call, protected_paths=["eval.py"], budgets={"max_trials": 3})
    assert created["objective"]["direction"] == "max"
    assert created["evaluator"]["command"] == ["python", "eval.py"]
    assert call("campaign_get", campaign=created["id"]) == created
    updated = call("campaign_update", campaign=created["id"], description="new", budgets={"max_trials": 5})
    assert updated["description"] == "new" and updated["budgets"]["max_trials"] == 5
    assert call("campaign_get")["total"] == 1


def test_campaign_get_without_an_id_lists_and_refuses_filters_with_one(call, call_error):
    first = make_campaign(call)
    call("campaign_update", campaign=first["id"], status="paused")
    second = make_campaign(call, name="second")
    assert [c["id"] for c in call("campaign_get")["campaigns"]] == [second["id"], first["id"]]
    assert [c["id"] for c in call("campaign_get", status="paused")["campaigns"]] == [first["id"]]
    assert call("campaign_get", campaign=second["id"])["name"] == "second"
    message = call_error("campaign_get", campaign=first["id"], status="paused")
    assert "status is a list argument" in message and "drop `campaign` to list" in message
    assert "limit" in call_error("campaign_get", campaign=first["id"], limit=5)


def test_campaign_bad_input_is_clear_and_changes_nothing(lab, call, call_error):
    make_campaign(call)
    before = ledger_snapshot(lab)
    assert "already exists" in call_error("campaign_create", **SIMPLE_CAMPAIGN)
    message = call_error("campaign_create", **(SIMPLE_CAMPAIGN | {"name": "x", "objective": {"metric": "a", "direction": "up"}}))
    assert "objective.direction" in message
    assert "exactly one of regex or json_file" in call_error(
        "campaign_create", **(SIMPLE_CAMPAIGN | {"name": "y", "evaluator": {"command": ["e"], "metrics": [{"name": "a"}]}}))
    assert "relative to the repository" in call_error(
        "campaign_create", **(SIMPLE_CAMPAIGN | {"name": "z", "protected_paths": ["../secret"]}))
    assert "no campaign with id 42" in call_error("campaign_get", campaign=42)
    assert "nothing to update" in call_error("campaign_update", campaign=1)
    assert ledger_snapshot(lab) == before


def test_evaluator_is_frozen_once_the_baseline_is_scored(lab, call, call_error):
    campaign = make_campaign(call)
    baseline = call("trial_create", campaign=campaign["id"], kind="baseline")
    call("campaign_update", campaign=campaign["id"], protected_paths=["eval.py"])  # unscored: allowed
    lab.db["trials"].update(baseline["id"], {"score": 0.5})  # as the evaluation path would
    assert "after a trial has been scored" in call_error(
        "campaign_update", campaign=campaign["id"], evaluator={"command": ["cheat"], "metrics": [{"name": "a", "regex": "(1)"}]})


def test_trials_form_a_lineage(call, call_error):
    cid = make_campaign(call)["id"]
    assert "no baseline trial yet" in call_error("trial_create", campaign=cid, kind="param")
    base = call("trial_create", campaign=cid, kind="baseline", hypothesis="reproduce")
    assert base["depth"] == 0 and base["score"] is None
    assert "already has baseline" in call_error("trial_create", campaign=cid, kind="baseline")
    a = call("trial_create", campaign=cid, kind="param", hypothesis="lr 0.1")
    b = call("trial_create", campaign=cid, kind="code", hypothesis="normalise", parent=a["id"])
    c = call("trial_create", campaign=cid, kind="algo", hypothesis="mlp", parent=a["id"])
    assert a["parent_id"] == base["id"] and b["depth"] == 2
    lineage = call("trial_get", trial=b["id"], lineage=True)
    assert [x["id"] for x in lineage["ancestors"]] == [base["id"], a["id"]]
    whole = call("trial_get", trial=base["id"], lineage=True)
    tree = whole["tree"]
    assert [n["id"] for n in tree["children"]] == [a["id"]]
    assert sorted(n["id"] for n in tree["children"][0]["children"]) == [b["id"], c["id"]]
    assert not whole["truncated"] and whole["descendants"] == 3
    d = call("trial_create", campaign=cid, kind="code", parent=b["id"])
    call("trial_create", campaign=cid, kind="code", parent=d["id"])  # 4 levels below the baseline
    cut = call("trial_get", trial=base["id"], lineage=True)  # 3 levels are shown, and the cut is said
    assert cut["truncated"] and cut["descendants"] == 4
    assert not call("trial_get", trial=a["id"], lineage=True)["truncated"]  # 3 levels below a: all of it
    assert "needs a trial" in call_error("trial_get", lineage=True)
    assert "needs a trial" in call_error("trial_get", campaign=cid, lineage=True)
    assert "campaign is a list argument" in call_error("trial_get", trial=b["id"], campaign=cid, lineage=True)
    assert "status" in call("trial_get", trial=b["id"], lineage=False)  # the trial itself


def test_trial_parent_must_be_in_the_same_campaign(call, call_error):
    first = make_campaign(call)["id"]
    second = make_campaign(call, name="other")["id"]
    foreign = call("trial_create", campaign=first, kind="baseline")
    call("trial_create", campaign=second, kind="baseline")
    assert "belongs to campaign" in call_error("trial_create", campaign=second, kind="param", parent=foreign["id"])


def test_max_trials_budget_is_enforced(call, call_error):
    cid = make_campaign(call, budgets={"max_trials": 2})["id"]
    call("trial_create", campaign=cid, kind="baseline")
    call("trial_create", campaign=cid, kind="param")
    assert "used its 2 trials" in call_error("trial_create", campaign=cid, kind="param")


SCORE_FIELDS = {"score", "score_std", "seed_scores", "metrics", "delta_parent", "delta_baseline"}


def test_no_tool_accepts_a_score():
    for spec in all_tools().values():
        assert not SCORE_FIELDS & set(spec.input_model.model_fields), f"{spec.name} takes a score"


def test_leaderboard_is_direction_aware_and_skips_unscored(lab, call):
    cid = make_campaign(call)["id"]
    base = call("trial_create", campaign=cid, kind="baseline")["id"]
    ids = [call("trial_create", campaign=cid, kind="param")["id"] for _ in range(3)]
    for trial_id, score in zip([base, *ids[:2]], [0.5, 0.9, 0.7]):
        lab.db["trials"].update(trial_id, {"score": score})  # as the evaluation path would
    board = call("trial_get", ranked=True, campaign=cid)
    assert [e["trial"]["id"] for e in board["entries"]] == [ids[0], ids[1], base]
    assert ids[2] not in [e["trial"]["id"] for e in board["entries"]]
    loss = make_campaign(call, name="loss", objective={"metric": "loss", "direction": "min"})["id"]
    base = call("trial_create", campaign=loss, kind="baseline")["id"]
    others = [call("trial_create", campaign=loss, kind="param")["id"] for _ in range(2)]
    for trial_id, score in zip([base, *others], [0.5, 0.9, 0.7]):
        lab.db["trials"].update(trial_id, {"score": score})
    board = call("trial_get", ranked=True, campaign=loss)
    assert [e["trial"]["score"] for e in board["entries"]] == [0.5, 0.7, 0.9]


def test_trial_get_without_an_id_filters_and_pages(call, call_error):
    cid = make_campaign(call)["id"]
    call("trial_create", campaign=cid, kind="baseline")
    for i in range(7):
        call("trial_create", campaign=cid, kind="param" if i % 2 else "code", hypothesis=f"h{i}")
    page = call("trial_get", campaign=cid, kind="code", limit=2)
    assert page["total"] == 4 and len(page["trials"]) == 2
    rest = call("trial_get", campaign=cid, kind="code", limit=2, cursor=page["next_cursor"])
    assert rest["next_cursor"] is None
    assert {t["hypothesis"] for t in page["trials"] + rest["trials"]} == {"h0", "h2", "h4", "h6"}
    assert "not one this server gave out" in call_error("trial_get", cursor="abc")
    one = page["trials"][0]["id"]
    assert call("trial_get", trial=one)["hypothesis"] in {"h0", "h2", "h4", "h6"}
    message = call_error("trial_get", trial=one, campaign=cid, kind="code")
    assert "campaign, kind are list arguments" in message and "with `trial`" in message


def test_ideas_queue_by_priority(call, call_error):
    cid = make_campaign(call)["id"]
    low = call("idea_set", campaign=cid, title="tweak lr", type="PARAM", priority=1)
    high = call("idea_set", campaign=cid, title="normalise inputs", type="CODE", priority=5, risk="low")
    assert [i["id"] for i in call("idea_list", campaign=cid)["ideas"]] == [high["id"], low["id"]]
    call("idea_set", idea=low["id"], status="dropped")
    assert [i["id"] for i in call("idea_list", campaign=cid, status="open")["ideas"]] == [high["id"]]
    assert "type" in call_error("idea_set", campaign=cid, title="x", type="WILD")
    call("trial_create", campaign=cid, kind="baseline")
    trial = call("trial_create", campaign=cid, kind="code", idea=high["id"])
    idea = call("idea_list", campaign=cid, status="running")["ideas"][0]
    assert idea["trial_id"] == trial["id"]


def test_idea_set_queues_without_an_id_and_changes_with_one(call, call_error):
    cid = make_campaign(call)["id"]
    new = call("idea_set", campaign=cid, title="warmup", type="PARAM")
    assert (new["campaign_id"], new["status"], new["risk"], new["priority"], new["description"]) == \
        (cid, "open", "medium", 0, "")
    changed = call("idea_set", idea=new["id"], priority=3.5, risk="high", description="longer warmup")
    assert (changed["priority"], changed["risk"], changed["description"]) == (3.5, "high", "longer warmup")
    assert (changed["title"], changed["type"], changed["status"]) == ("warmup", "PARAM", "open")
    assert call("idea_set", idea=new["id"], status="done", title="warmup 5 epochs")["status"] == "done"
    assert "nothing to update" in call_error("idea_set", idea=new["id"])
    assert "no idea with id 999" in call_error("idea_set", idea=999, status="done")
    assert "no campaign with id 999" in call_error("idea_set", campaign=999, title="x", type="CODE")


def test_idea_set_refuses_arguments_of_the_other_mode(call, call_error):
    cid = make_campaign(call)["id"]
    idea = call("idea_set", campaign=cid, title="warmup", type="PARAM")["id"]
    message = call_error("idea_set", idea=idea, campaign=cid, title="other")
    assert "campaign is for a new idea" in message and "drop campaign" in message
    message = call_error("idea_set", campaign=cid, title="x", type="CODE", status="done")
    assert "a new idea starts open" in message and "idea=N" in message
    message = call_error("idea_set", campaign=cid, title="x")
    assert "needs campaign, title and type; missing type" in message and "pass type" in message
    message = call_error("idea_set", status="dropped")
    assert "a new idea starts open" in message
    message = call_error("idea_set", title="x", type="ALGO")
    assert "missing campaign" in message and "idea=N" in message
    assert [i["id"] for i in call("idea_list", campaign=cid)["ideas"]] == [idea]  # nothing was added or changed
    assert call("idea_list", campaign=cid)["ideas"][0]["title"] == "warmup"


def test_note_search_ranks_by_relevance(call):
    cid = make_campaign(call)["id"]
    call("note_add", title="CUDA out of memory", body="batch 512 overflowed; batch 256 fits", kind="failure",
         campaign=cid, tags=["oom"])
    call("note_add", title="learning rate sweep", body="0.1 diverges, 0.01 is best", campaign=cid)
    call("note_add", title="memory notes", body="memory memory memory usage of the data loader", campaign=cid)
    hits = call("note_search", query="memory")["hits"]
    assert {h["note"]["title"] for h in hits} == {"CUDA out of memory", "memory notes"}
    assert hits[0]["note"]["title"] == "memory notes"
    assert call("note_search", query="diverges")["hits"][0]["note"]["title"] == "learning rate sweep"
    assert call("note_search", query='" OR 1 NEAR(')["hits"] == []  # operators are not injected
    assert call("note_search", query="batch", kind="failure")["hits"][0]["note"]["tags"] == ["oom"]


def test_lab_status_reports_capabilities_with_reasons(call):
    status = call("lab_status")
    names = {c["name"] for c in status["capabilities"]}
    assert names == {"docker", "bubblewrap", "nvml", "uv", "ray"}
    for cap in status["capabilities"]:
        assert cap["detail"], cap
    assert status["local_sandbox"] in {"bubblewrap", "process-group"}


def test_every_call_is_journaled(lab, call, call_error):
    make_campaign(call)
    call_error("campaign_get", campaign=99)
    rows = list(lab.db.query("SELECT tool, ok, error, args_digest FROM journal ORDER BY id"))
    assert [(r["tool"], r["ok"]) for r in rows] == [("campaign_create", 1), ("campaign_get", 0)]
    assert "no campaign with id 99" in rows[1]["error"] and len(rows[1]["args_digest"]) == 16


def test_oversized_and_malformed_arguments(lab, call_error):
    assert "limit is" in call_error("note_add", title="x", body="y" * 2_100_000)
    assert "unknown tool" in call_error("no_such_tool")
    assert "Field required" in call_error("trial_create")


def test_concurrent_writers_lose_nothing(tmp_path):
    home = tmp_path / "lab"
    lab = Lab.open(home)
    from sotalab.tools.invoke import invoke

    cid = invoke(lab, "campaign_create", SIMPLE_CAMPAIGN)["id"]
    invoke(lab, "trial_create", {"campaign": cid, "kind": "baseline"})
    errors: list[Exception] = []

    def writer():
        mine = Lab.open(home)
        try:
            for _ in range(40):
                invoke(mine, "trial_create", {"campaign": cid, "kind": "param"})
        except (Exception, sqlite3.OperationalError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 241


@pytest.mark.parametrize("n", [2_000])
def test_lineage_and_leaderboard_bound_their_output(lab, call, n):
    cid = make_campaign(call)["id"]
    base = call("trial_create", campaign=cid, kind="baseline")["id"]
    stamp = ledger.now()
    lab.db["trials"].insert_all(({"campaign_id": cid, "parent_id": base, "kind": "param", "depth": 1,
                                  "score": i / n, "cost": "{}", "created_at": stamp, "updated_at": stamp}
                                 for i in range(n)))
    lineage = call("trial_get", trial=base, lineage=True)
    assert lineage["descendants"] == trials.LINEAGE_NODES and lineage["truncated"]
    assert trials.lineage(lab, base, max_nodes=100).descendants == 100
    assert len(call("trial_get", ranked=True, campaign=cid, limit=200)["entries"]) == 200


def test_racing_for_the_baseline_and_the_last_trial_has_one_winner(tmp_path):
    from sotalab.tools.errors import LabError
    from sotalab.tools.invoke import invoke

    home = tmp_path / "lab"
    cid = invoke(Lab.open(home), "campaign_create", SIMPLE_CAMPAIGN | {"budgets": {"max_trials": 5}})["id"]
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def racer(kind: str):
        lab = Lab.open(home)
        barrier.wait()
        try:
            invoke(lab, "trial_create", {"campaign": cid, "kind": kind})
            outcomes.append("won")
        except LabError as exc:
            outcomes.append(str(exc))

    for kind in ("baseline", "param"):
        outcomes.clear()
        threads = [threading.Thread(target=racer, args=(kind,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("won") == (1 if kind == "baseline" else 4), outcomes
    lab = Lab.open(home)
    assert lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 5
    assert lab.db.execute("SELECT COUNT(*) FROM trials WHERE kind = 'baseline'").fetchone()[0] == 1


def test_numbers_too_large_for_the_ledger_are_a_clear_error(lab, call, call_error):
    make_campaign(call)
    huge = 10**30
    assert "too large" in call_error("campaign_get", campaign=huge)
    assert "too large" in call_error("trial_create", campaign=1, kind="baseline", parent=huge)
    assert "not one this server gave out" in call_error("campaign_get", cursor=str(huge))
    assert lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0
    last = list(lab.db.query("SELECT tool, ok FROM journal ORDER BY id DESC LIMIT 1"))[0]
    assert last == {"tool": "campaign_get", "ok": 0}  # still journaled


def test_result_size_counts_characters_not_json_escapes(call):
    cid = make_campaign(call)["id"]
    call("trial_create", campaign=cid, kind="baseline")
    for _ in range(150):  # 150 x 200 CJK characters: ~30k characters, ~180k as \u escapes
        call("trial_create", campaign=cid, kind="param", hypothesis="学习率" * 70)
    page = call("trial_get", campaign=cid, limit=200)
    assert len(page["trials"]) == 151


def test_updating_one_budget_keeps_the_others(call):
    cid = make_campaign(call, budgets={"run_wall_s": 60, "memory_gb": 2, "max_trials": 3})["id"]
    updated = call("campaign_update", campaign=cid, budgets={"max_trials": 10})
    assert updated["budgets"]["max_trials"] == 10
    assert updated["budgets"]["run_wall_s"] == 60 and updated["budgets"]["memory_gb"] == 2
    cleared = call("campaign_update", campaign=cid, budgets={"memory_gb": None})
    assert cleared["budgets"]["memory_gb"] is None and cleared["budgets"]["run_wall_s"] == 60


def test_non_finite_numbers_are_refused(call_error):
    for objective in ({"metric": "a", "direction": "max", "reported": float("nan")},
                      {"metric": "a", "direction": "max", "target": float("inf")}):
        assert "finite" in call_error("campaign_create", **(SIMPLE_CAMPAIGN | {"objective": objective}))
    assert "finite" in call_error("campaign_create", **(SIMPLE_CAMPAIGN | {"budgets": {"gpu_hours": float("inf")}}))


def test_oversized_path_lists_are_refused_before_anything_is_stored(lab, call_error):
    assert "at most" in call_error("campaign_create", **(SIMPLE_CAMPAIGN | {"protected_paths": ["a.py"] * 100_000}))
    assert "at most" in call_error("campaign_create", **(SIMPLE_CAMPAIGN | {"evaluator": SIMPLE_CAMPAIGN["evaluator"] | {"command": ["x" * 90_000]}}))
    assert lab.db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0] == 0


def test_lineage_of_a_deep_chain_is_bounded(lab, call):
    cid = make_campaign(call)["id"]
    parent = call("trial_create", campaign=cid, kind="baseline")["id"]
    stamp = ledger.now()
    with ledger.transaction(lab.db) as db:
        for depth in range(1, 3001):
            parent = db.execute(
                "INSERT INTO trials (campaign_id, parent_id, kind, hypothesis, depth, cost, created_at, updated_at) "
                "VALUES (?, ?, 'param', ?, ?, '{}', ?, ?)", [cid, parent, "h" * 300, depth, stamp, stamp]).lastrowid
    deepest = call("trial_get", trial=parent, lineage=True)
    assert deepest["ancestors"][-1]["id"] == parent - 1  # nearest ancestors kept, parent last
    assert deepest["ancestors_omitted"] == 3000 - len(deepest["ancestors"]) > 0
    middle = call("trial_get", trial=parent - 1500, lineage=True)
    assert middle["truncated"] and middle["descendants"] == trials.LINEAGE_DEPTH
    assert trials.lineage(lab, parent - 1500, max_depth=50).descendants == 50


def test_lineage_of_a_wide_tree_is_cut_to_a_bounded_result(lab, call):
    cid = make_campaign(call)["id"]
    base = call("trial_create", campaign=cid, kind="baseline")["id"]
    stamp = ledger.now()
    lab.db["trials"].insert_all({"campaign_id": cid, "parent_id": base, "kind": "param", "depth": 1,
                                 "hypothesis": "ü" * 300, "cost": "{}", "created_at": stamp, "updated_at": stamp}
                                for _ in range(1000))
    wide = call("trial_get", trial=base, lineage=True)
    assert wide["truncated"] and 0 < wide["descendants"] < trials.LINEAGE_NODES  # the size cut, before the count
    assert 0 < trials.lineage(lab, base, max_nodes=1000).descendants < 1000
    assert len(wide["tree"]["children"]) == wide["descendants"]


def test_note_search_stays_bounded_with_long_notes(call, call_error):
    for i in range(12):
        call("note_add", title=f"memory note {i}", body="memory " + "z" * 19_990)
    result = call("note_search", query="memory", limit=50)
    assert 1 <= len(result["hits"]) < 12
    assert result["omitted"] == 12 - len(result["hits"])
    assert "at most 100 characters" in call_error("note_add", title="t", tags=["x" * 1000])


def test_campaign_get_pages_by_size_when_campaigns_are_large(call):
    big = SIMPLE_CAMPAIGN | {"description": "d" * 3000, "protected_paths": [f"data/split_{i}.csv" for i in range(100)]}
    for i in range(40):
        call("campaign_create", **(big | {"name": f"big {i}"}))
    seen, cursor = [], None
    while True:
        page = call("campaign_get", limit=50, cursor=cursor)
        assert page["campaigns"] and page["total"] == 40
        seen += [c["name"] for c in page["campaigns"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"big {i}" for i in reversed(range(40))]


def test_idea_list_pages_by_size_when_descriptions_are_long(call):
    cid = make_campaign(call)["id"]
    for i in range(60):
        call("idea_set", campaign=cid, title=f"idea {i}", type="PARAM", description="why " * 1000)
    seen, cursor = [], None
    while True:
        page = call("idea_list", campaign=cid, limit=200, cursor=cursor)
        assert page["ideas"] and page["total"] == 60
        seen += [i["title"] for i in page["ideas"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"idea {i}" for i in range(60)]


def test_leaderboard_ties_share_a_rank(lab, call):
    cid = make_campaign(call)["id"]
    ids = [call("trial_create", campaign=cid, kind="baseline")["id"]]
    ids += [call("trial_create", campaign=cid, kind="param")["id"] for _ in range(4)]
    for trial_id, score in zip(ids, [0.5, 0.9, 0.7, 0.9, 0.7]):
        lab.db["trials"].update(trial_id, {"score": score})  # as the evaluation path would
    board = call("trial_get", ranked=True, campaign=cid)["entries"]
    assert [(e["rank"], e["trial"]["id"]) for e in board] == [
        (1, ids[1]), (1, ids[3]), (3, ids[2]), (3, ids[4]), (5, ids[0])]  # equal scores: older first, same rank


def test_trial_get_ranked_is_the_leaderboard_and_refuses_what_it_cannot_honour(lab, call, call_error):
    cid = make_campaign(call)["id"]
    ids = [call("trial_create", campaign=cid, kind="baseline")["id"]]
    ids += [call("trial_create", campaign=cid, kind="param" if i % 2 else "code")["id"] for i in range(14)]
    unscored = call("trial_create", campaign=cid, kind="param")["id"]
    for i, trial_id in enumerate(ids):
        lab.db["trials"].update(trial_id, {"score": i / 100})  # as the evaluation path would
    board = call("trial_get", campaign=cid, ranked=True)
    assert (board["campaign"], board["metric"], board["direction"]) == (cid, "accuracy", "max")
    assert [e["trial"]["id"] for e in board["entries"]] == ids[::-1][:trials.RANKED_LIMIT]  # best first, 10
    assert [e["rank"] for e in board["entries"]] == list(range(1, 11))
    every = call("trial_get", campaign=cid, ranked=True, limit=50)["entries"]
    assert [e["trial"]["id"] for e in every] == ids[::-1] and unscored not in [e["trial"]["id"] for e in every]
    code = call("trial_get", campaign=cid, ranked=True, kind="code", limit=3)["entries"]
    assert [e["trial"]["kind"] for e in code] == ["code"] * 3
    assert [e["trial"]["id"] for e in code] == [t for t in ids[::-1] if t in ids[1::2]][:3]
    assert call("trial_get", campaign=cid, ranked=True, claims_only=True)["entries"] == []  # nothing audited
    # The plain list is unchanged: oldest first, 50 by default.
    assert [t["id"] for t in call("trial_get", campaign=cid)["trials"]] == [*ids, unscored]

    assert "needs a campaign" in call_error("trial_get", ranked=True)
    assert "with `trial`" in call_error("trial_get", trial=ids[0], ranked=True)
    assert "goes with ranked=true" in call_error("trial_get", campaign=cid, claims_only=True)
    assert "goes with ranked=true" in call_error("trial_get", trial=ids[0], claims_only=True)
    for refused in ({"label": "keep"}, {"status": "open"}, {"parent": ids[0]}, {"scored": True}, {"cursor": "10"}):
        message = call_error("trial_get", campaign=cid, ranked=True, **refused)
        assert f"{next(iter(refused))} cannot go with ranked=true" in message
    assert "label, cursor cannot" in call_error("trial_get", campaign=cid, ranked=True, label="keep", cursor="1")
    # Explicit defaults of the ranking's flags do not trip the one-trial refusal.
    assert call("trial_get", trial=ids[0], ranked=False, claims_only=False)["id"] == ids[0]


def test_a_note_on_a_trial_belongs_to_the_trials_campaign(call, call_error):
    first = make_campaign(call)["id"]
    second = make_campaign(call, name="other")["id"]
    trial = call("trial_create", campaign=first, kind="baseline")["id"]
    note = call("note_add", title="loss diverged at step 200", kind="failure", trial=trial)
    assert note["campaign_id"] == first
    assert [h["note"]["id"] for h in call("note_search", query="diverged", campaign=first)["hits"]] == [note["id"]]
    assert "belongs to campaign" in call_error("note_add", title="x", campaign=second, trial=trial)


def test_evaluator_is_frozen_once_any_trial_is_scored(lab, call, call_error):
    cid = make_campaign(call)["id"]
    call("trial_create", campaign=cid, kind="baseline")
    child = call("trial_create", campaign=cid, kind="param")["id"]
    lab.db["trials"].update(child, {"score": 0.9})  # scored before the baseline, as the evaluation path allows
    lenient = {"command": ["python", "eval.py", "--lenient"], "metrics": [{"name": "accuracy", "regex": "(1)"}]}
    assert "has been scored" in call_error("campaign_update", campaign=cid, evaluator=lenient)


def test_goalposts_do_not_move_once_a_trial_is_scored(lab, call, call_error):
    cid = make_campaign(call)["id"]
    call("campaign_update", campaign=cid, objective={"metric": "accuracy", "direction": "max", "min_effect": 0.02})
    baseline = call("trial_create", campaign=cid, kind="baseline")["id"]
    lab.db["trials"].update(baseline, {"score": 0.8})  # as the evaluation path would
    for change in ({"min_effect": 0.0}, {"direction": "min"}, {"metric": "loss"},
                   {"secondary": {"nll": {"direction": "min", "tolerance": 9}}}):
        message = call_error("campaign_update", campaign=cid,
                             objective={"metric": "accuracy", "direction": "max"} | change)
        assert "after a trial has been scored" in message and f"objective.{next(iter(change))}" in message
    moved = call("campaign_update", campaign=cid, objective={"metric": "accuracy", "direction": "max", "target": 0.9})
    assert moved["objective"]["target"] == 0.9 and moved["objective"]["min_effect"] == 0.02


def test_updating_the_target_keeps_the_rest_of_the_objective(call):
    objective = {"metric": "accuracy", "direction": "max", "reported": 0.8, "min_effect": 0.01,
                 "secondary": {"nll": {"direction": "min", "tolerance": 0.1}}}
    cid = make_campaign(call, objective=objective)["id"]
    updated = call("campaign_update", campaign=cid, objective={"metric": "accuracy", "direction": "max", "target": 0.9})
    assert updated["objective"]["target"] == 0.9
    assert updated["objective"]["reported"] == 0.8 and updated["objective"]["min_effect"] == 0.01
    assert updated["objective"]["secondary"] == {"nll": {"direction": "min", "tolerance": 0.1}}


def test_a_huge_bogus_cursor_is_not_echoed_back(call_error):
    message = call_error("campaign_get", cursor="x" * 1_000_000)
    assert "not one this server gave out" in message and len(message) < 300


def test_unknown_arguments_are_refused_not_ignored(lab, call, call_error):
    cid = make_campaign(call)["id"]
    message = call_error("campaign_update", campaign=cid, name="renamed")
    assert "campaign_update has no argument 'name'" in message and "description" in message
    assert call("campaign_get", campaign=cid)["name"] == "demo"
    assert "no argument 'verbose'" in call_error("lab_status", verbose=True)


def test_a_paused_or_done_campaign_takes_no_new_trials(call, call_error):
    cid = make_campaign(call)["id"]
    call("trial_create", campaign=cid, kind="baseline")
    for status in ("paused", "done"):
        call("campaign_update", campaign=cid, status=status)
        assert f"is {status}: it takes no new trials" in call_error("trial_create", campaign=cid, kind="param")
    call("campaign_update", campaign=cid, status="active")
    assert call("trial_create", campaign=cid, kind="param")["parent_id"] is not None
