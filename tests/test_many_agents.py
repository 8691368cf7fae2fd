"""Many agents on one campaign: leases, surfaces, parent choice, and a ledger that holds
under concurrent writers without "database is locked"."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from conftest import SIMPLE_CAMPAIGN
from sotalab.tools import ledger
from test_repos import make_upstream


@pytest.fixture
def campaign(call, tmp_path) -> int:
    spec = dict(SIMPLE_CAMPAIGN, protected_paths=["eval.py"])
    cid = call("campaign_create", **spec)["id"]
    call("repo_clone", campaign=cid, url=str(make_upstream(tmp_path)))
    return cid


# -- the ledger under concurrency ------------------------------------------------------


def test_a_write_while_a_select_is_open_never_meets_a_stale_snapshot(tmp_path):
    """The cause of the intermittent "database is locked": a connection still iterating a
    SELECT holds a WAL snapshot; once another connection commits, a write on the first
    fails at once (SQLITE_BUSY_SNAPSHOT), whatever the busy timeout. The ledger's query
    ends its statement before returning, so the write goes through."""
    first, second = ledger.connect(tmp_path / "lab.db"), ledger.connect(tmp_path / "lab.db")
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    for _ in range(3):
        first.execute("INSERT INTO t (v) VALUES (0)")
    rows = first.query("SELECT * FROM t")
    head = next(rows)
    second.execute("UPDATE t SET v = 5 WHERE id = 3")
    first.execute("UPDATE t SET v = 1 WHERE id = ?", [head["id"]])  # raised before the fix
    assert [r["v"] for r in rows] == [0, 0]  # the rows as they were when the query ran
    assert [r["v"] for r in first.query("SELECT v FROM t ORDER BY id")] == [1, 0, 5]


def test_the_plain_sqlite_pattern_does_fail_so_the_test_above_means_something(tmp_path):
    path = tmp_path / "raw.db"
    a = sqlite3.connect(path, timeout=5, isolation_level=None)
    b = sqlite3.connect(path, timeout=5, isolation_level=None)
    a.execute("PRAGMA journal_mode = WAL")
    a.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    a.executemany("INSERT INTO t (v) VALUES (?)", [(0,), (0,), (0,)])
    cursor = a.execute("SELECT * FROM t")
    cursor.fetchone()
    b.execute("UPDATE t SET v = 5 WHERE id = 3")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        a.execute("UPDATE t SET v = 1 WHERE id = 1")
    assert time.monotonic() - started < 1  # at once: the busy timeout never applied


def test_concurrent_tool_calls_from_many_threads_lose_nothing(lab, call, campaign):
    errors: list[str] = []

    def writer(n: int) -> None:
        for i in range(25):
            try:
                call("note_add", campaign=campaign, title=f"agent {n} note {i}", body="x" * 200)
                call("idea_set", campaign=campaign, title=f"agent {n} idea {i}", type="PARAM")
                call("idea_list", campaign=campaign, limit=5)
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert lab.db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 150
    assert lab.db.execute("SELECT COUNT(*) FROM ideas").fetchone()[0] == 150


# -- leases ----------------------------------------------------------------------------


def test_the_next_idea_claim_hands_each_agent_a_different_idea(call, campaign):
    for i, priority in enumerate([1, 5, 3]):
        call("idea_set", campaign=campaign, title=f"idea {i}", type="PARAM", priority=priority)
    got = [call("lease_take", kind="idea", campaign=campaign, agent=f"agent-{n}") for n in range(4)]
    titles = [g["idea"]["title"] if g["idea"] else None for g in got]
    assert titles == ["idea 1", "idea 2", "idea 0", None]  # by priority, then nothing left
    assert "claimed by other agents" in got[3]["reason"]
    # The same agent asking again renews its own claim rather than taking another idea.
    again = call("lease_take", kind="idea", campaign=campaign, agent="agent-0")
    assert again["idea"]["title"] == "idea 1"


def test_a_claim_is_refused_while_it_lives_and_taken_over_when_it_expires(call, call_error, campaign):
    idea = call("idea_set", campaign=campaign, title="one", type="CODE")["id"]
    call("lease_take", kind="idea", id=idea, agent="alice", ttl_s=1)
    message = call_error("lease_take", kind="idea", id=idea, agent="bob")
    assert "claimed by agent 'alice'" in message and "skips claimed ideas" in message
    time.sleep(1.1)
    taken = call("lease_take", kind="idea", id=idea, agent="bob", ttl_s=60)
    assert taken["agent"] == "bob" and taken["taken_over_from"] == "alice"
    # An expired claim no longer hides the idea from the next-idea claim either.
    assert call("lease_take", kind="idea", id=idea, agent="alice", ttl_s=0)["released"] is False
    assert call("lease_take", kind="idea", id=idea, agent="bob", ttl_s=0)["released"] is True
    assert call("lease_take", kind="idea", campaign=campaign, agent="carol")["idea"]["id"] == idea  # free again


def test_a_zero_second_lease_gives_the_claim_up_even_once_the_idea_is_done(call, campaign):
    idea = call("idea_set", campaign=campaign, title="one", type="CODE")["id"]
    assert "expires_at" in call("lease_take", kind="idea", id=idea, agent="alice")
    call("idea_set", idea=idea, status="done")  # done ideas cannot be claimed, but can be given up
    assert call("lease_take", kind="idea", id=idea, agent="bob", ttl_s=0) == {"kind": "idea", "id": idea,
                                                                              "released": False}
    assert call("lease_take", kind="idea", id=idea, agent="alice", ttl_s=0)["released"] is True
    assert call("lease_take", kind="idea", id=idea, agent="alice", ttl_s=0)["released"] is False


def test_done_ideas_and_evaluated_trials_cannot_be_claimed(call, call_error, campaign):
    idea = call("idea_set", campaign=campaign, title="one", type="CODE")["id"]
    call("idea_set", idea=idea, status="done")
    assert "is done" in call_error("lease_take", kind="idea", id=idea, agent="a")
    assert call("lease_take", kind="idea", campaign=campaign, agent="a")["idea"] is None
    assert "no trial with id 999" in call_error("lease_take", kind="trial", id=999, agent="a")
    assert "pattern" in call_error("lease_take", kind="idea", id=idea, agent="-rf")


def test_the_next_idea_claim_and_its_refused_combinations(call, call_error, campaign):
    empty = call("lease_take", kind="idea", campaign=campaign, agent="a")
    assert empty["idea"] is None and empty["claim"] is None and "no open idea" in empty["reason"]
    assert "not both" in call_error("lease_take", kind="idea", id=1, campaign=campaign, agent="a")
    assert "kind is 'trial'" in call_error("lease_take", kind="trial", campaign=campaign, agent="a")
    assert "needs the item's id" in call_error("lease_take", kind="idea", campaign=campaign, agent="a", ttl_s=0)
    assert "needs an id" in call_error("lease_take", kind="idea", agent="a")
    assert "no campaign with id 999" in call_error("lease_take", kind="idea", campaign=999, agent="a")


def test_racing_agents_never_get_the_same_idea(lab, call, campaign):
    for i in range(20):
        call("idea_set", campaign=campaign, title=f"idea {i}", type="PARAM")
    got: list[int] = []
    lock = threading.Lock()

    def agent(n: int) -> None:
        while True:
            idea = call("lease_take", kind="idea", campaign=campaign, agent=f"agent-{n}")["idea"]
            if idea is None:
                return
            with lock:
                got.append(idea["id"])
            call("idea_set", idea=idea["id"], status="done")

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 20


# -- surfaces --------------------------------------------------------------------------


def test_a_trial_declaring_a_surface_cannot_snapshot_changes_outside_it(call, call_error, lab, campaign):
    call("surfaces_set", campaign=campaign, surfaces={"model": ["model.py"], "data": ["data/**"]})
    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    trial = call("trial_create", campaign=campaign, kind="param", parent=baseline)["id"]
    assert call("surfaces_set", trial=trial, surface="model")["globs"] == ["model.py"]
    call("workspace_write", trial=trial, path="model.py", content="LR = 0.3\n")
    call("workspace_write", trial=trial, path="helper.py", content="X = 1\n")
    message = call_error("trial_snapshot", trial=trial)
    assert "surface_violation" in message and "helper.py" in message and "model.py" not in message.split("outside it:")[1]
    message = call_error("trial_evaluate", trial=trial)  # never scored either
    assert "surface_violation" in message
    assert call("trial_get", trial=trial)["score"] is None
    call("workspace_write", trial=trial, patch="--- a/helper.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-X = 1\n")
    snap = call("trial_snapshot", trial=trial)
    assert snap["diff_stat"]["files"] == ["model.py"]


def test_moving_a_file_out_of_the_surface_is_outside_it(call, call_error, campaign):
    call("surfaces_set", campaign=campaign, surfaces={"model": ["model.py"]})
    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    trial = call("trial_create", campaign=campaign, kind="code", parent=baseline)["id"]
    call("surfaces_set", trial=trial, surface="model")
    call("workspace_write", trial=trial,
         patch="diff --git a/model.py b/other.py\nsimilarity index 100%\nrename from model.py\nrename to other.py\n")
    assert "other.py" in call_error("trial_snapshot", trial=trial)


def test_surface_declarations_are_checked(call, call_error, campaign):
    assert "lower-case" in call_error("surfaces_set", campaign=campaign, surfaces={"Bad Name": ["x"]})
    assert "relative" in call_error("surfaces_set", campaign=campaign, surfaces={"x": ["../etc/passwd"]})
    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    trial = call("trial_create", campaign=campaign, kind="param", parent=baseline)["id"]
    assert "surfaces_set(campaign, surfaces) first" in call_error("surfaces_set", trial=trial, surface="model")
    call("surfaces_set", campaign=campaign, surfaces={"model": ["model.py"]})
    assert "use one of ['model']" in call_error("surfaces_set", trial=trial, surface="optim")


def test_surfaces_set_takes_one_mode_at_a_time(call, call_error, campaign):
    call("surfaces_set", campaign=campaign, surfaces={"model": ["model.py"]})
    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    trial = call("trial_create", campaign=campaign, kind="param", parent=baseline)["id"]
    assert call("surfaces_set", trial=trial, surface="model") == {"trial": trial, "surface": "model",
                                                                  "globs": ["model.py"]}
    assert call("surfaces_set", trial=trial, surface=None) == {"trial": trial, "surface": None, "globs": []}
    assert "two modes" in call_error("surfaces_set", campaign=campaign, trial=trial, surface="model")
    assert "two modes" in call_error("surfaces_set", surfaces={"model": ["model.py"]}, trial=trial)
    assert "needs both trial and surface" in call_error("surfaces_set", trial=trial)
    assert "needs both trial and surface" in call_error("surfaces_set", surface="model")
    assert "needs campaign and surfaces" in call_error("surfaces_set", campaign=campaign)
    assert call("campaign_view", campaign=campaign)["surfaces"] == {"model": ["model.py"]}  # nothing changed


def test_campaign_view_shows_the_surfaces_and_where_runs_execute(call, campaign):
    view = call("campaign_view", campaign=campaign)
    assert view["surfaces"] == {} and view["execution"]["execution"]["executor"] == "local"
    call("surfaces_set", campaign=campaign, surfaces={"model": ["model.py"], "data": ["data/**"]})
    call("execution_set", executor="docker")  # the lab's default ...
    call("execution_set", campaign=campaign, slurm={"partition": "gpu"})  # ... and what the campaign sets itself
    view = call("campaign_view", campaign=campaign)
    assert view["surfaces"] == {"model": ["model.py"], "data": ["data/**"]}
    assert view["execution"]["own"]["slurm"]["partition"] == "gpu" and "executor" not in view["execution"]["own"]
    assert view["execution"]["execution"]["executor"] == "docker"  # from the lab
    assert view["execution"]["execution"]["slurm"]["partition"] == "gpu"
    lab = call("lab_status")["execution"]
    assert lab["campaign"] is None and lab["own"] == {"executor": "docker"}
    assert lab["execution"]["slurm"]["partition"] is None


# -- parent choice -----------------------------------------------------------------------


def test_parent_pick_draws_from_the_best_kept_trials(lab, call, campaign):
    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    ids = [baseline] + [call("trial_create", campaign=campaign, kind="param", parent=baseline)["id"] for _ in range(5)]
    # Scores are the evaluator's to write; here the ledger is set directly, as the
    # evaluation path would have left it.
    for trial, (score, label) in zip(ids, [(0.5, "keep"), (0.9, "keep"), (0.8, "keep"), (0.95, "disqualified"),
                                           (0.7, "discard"), (0.6, "keep")]):
        lab.db.execute("UPDATE trials SET score = ?, label = ? WHERE id = ?", [score, label, trial])
    best = call("parent_pick", campaign=campaign, strategy="best")
    assert best["parent"] == ids[1]
    pool = call("parent_pick", campaign=campaign, k=3, seed=1)
    assert [c["trial"] for c in pool["candidates"]] == [ids[1], ids[2], ids[5]]
    drawn = {call("parent_pick", campaign=campaign, k=3, seed=s)["parent"] for s in range(30)}
    assert drawn == {ids[1], ids[2], ids[5]}  # every one of the top k, never a discarded or disqualified one


def test_parent_pick_without_kept_trials_says_so(call, campaign):
    assert call("parent_pick", campaign=campaign)["parent"] is None


# -- four agents over HTTP -------------------------------------------------------------

AGENTS = 4
AGENT_TIME_S = 60.0
SURFACE_FILES = {"model": "model.py", "optim": "optim.py"}


class AgentClient:
    """One scripted agent: its own official-SDK client session over streamable HTTP,
    following job handles, timing every call and keeping every error it saw."""

    def __init__(self, session, name: str):
        self.session, self.name = session, name
        self.latencies: list[float] = []
        self.errors: list[str] = []

    async def call(self, tool: str, **arguments) -> dict:
        from sotalab.client.session import is_job_handle

        started = time.perf_counter()
        result = await self._once(tool, arguments)
        while is_job_handle(tool, result) and result["status"] == "running":
            result = await self._once("job_wait", {"job": result["job"], "timeout_s": 30})
        if is_job_handle(tool, result):
            if result["status"] != "succeeded":
                self.errors.append(f"{tool}: {result['error']}")
                raise AgentError(result["error"] or "job failed")
            result = result["result"] or {}
        self.latencies.append(time.perf_counter() - started)
        return result

    async def _once(self, tool: str, arguments: dict) -> dict:
        result = await self.session.call_tool(tool, arguments)
        if result.is_error:
            message = " ".join(c.text for c in result.content if getattr(c, "text", None))
            self.errors.append(f"{tool}: {message}")
            raise AgentError(message)
        return result.structured_content or {}


class AgentError(Exception):
    pass


def make_surface_repo(root) -> str:
    import subprocess

    repo = root / "upstream-surfaces"
    repo.mkdir()
    (repo / "model.py").write_text("WIDTH = 1\n")
    (repo / "optim.py").write_text("LR = 1\n")
    (repo / "eval.py").write_text(
        "import model, optim\nprint(f'accuracy={min(0.99, 0.5 + 0.001 * model.WIDTH + 0.001 * optim.LR):.4f}')\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    return str(repo)


async def run_agent(client: AgentClient, campaign: int, n: int, deadline: float, rogue: bool) -> list[dict]:
    """Claim an idea, branch from a parent the lineage suggests, change only the idea's
    surface, evaluate, mark the idea done. A rogue agent first strays outside its
    surface, must be refused, and puts the stray file back."""
    done = []
    while time.monotonic() < deadline:
        got = await client.call("lease_take", kind="idea", campaign=campaign, agent=client.name, ttl_s=120)
        idea = got["idea"]
        if idea is None:
            break
        surface = idea["title"].split(":")[0]
        parent = (await client.call("parent_pick", campaign=campaign, k=3))["parent"]
        trial = (await client.call("trial_create", campaign=campaign, kind="param", parent=parent,
                                   idea=idea["id"], hypothesis=idea["title"]))["id"]
        await client.call("surfaces_set", trial=trial, surface=surface)
        path = SURFACE_FILES[surface]
        name = "WIDTH" if surface == "model" else "LR"
        await client.call("workspace_write", trial=trial, path=path, content=f"{name} = {10 * (n + 1) + idea['id']}\n")
        if rogue:
            other = SURFACE_FILES["optim" if surface == "model" else "model"]
            original = (await client.call("workspace_read", trial=trial, path=other))["content"]
            await client.call("workspace_write", trial=trial, path=other, content=original + "# stray\n")
            try:
                await client.call("trial_evaluate", trial=trial)
                raise AssertionError("a diff outside its surface was evaluated")
            except AgentError as exc:
                assert "surface_violation" in str(exc)
                client.errors.pop()  # the refusal this agent provoked on purpose
            await client.call("workspace_write", trial=trial, path=other, content=original)
            rogue = False
        result = await client.call("trial_evaluate", trial=trial)
        await client.call("idea_set", idea=idea["id"], status="done")
        await client.call("lease_take", kind="idea", id=idea["id"], agent=client.name, ttl_s=0)
        done.append({"trial": trial, "idea": idea["id"], "surface": surface, "score": result.get("score")})
    return done


@pytest.mark.slow
def test_four_agents_over_http_work_one_campaign(tmp_path):
    import asyncio

    from mcp_helpers import http_server, http_session
    from sotalab.tools.home import Lab
    from sotalab.tools.invoke import invoke

    lab = Lab.open(tmp_path / "lab")
    campaign = invoke(lab, "campaign_create", {
        "name": "team", "objective": {"metric": "accuracy", "direction": "max"},
        "evaluator": {"command": ["python3", "eval.py"], "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
        "protected_paths": ["eval.py"]})["id"]
    invoke(lab, "repo_clone", {"campaign": campaign, "url": make_surface_repo(tmp_path)})
    baseline = invoke(lab, "trial_create", {"campaign": campaign, "kind": "baseline"})["id"]
    invoke(lab, "trial_evaluate", {"trial": baseline})
    invoke(lab, "surfaces_set", {"campaign": campaign, "surfaces": {s: [f] for s, f in SURFACE_FILES.items()}})
    ideas = [invoke(lab, "idea_set", {"campaign": campaign, "title": f"{s}: variant {i}", "type": "PARAM"})["id"]
             for i in range(6) for s in SURFACE_FILES]

    with http_server(lab.home) as (url, _):
        async def team():
            deadline = time.monotonic() + AGENT_TIME_S

            async def agent(n):
                async with http_session(f"{url}/mcp") as session:
                    client = AgentClient(session, f"agent-{n}")
                    return client, await run_agent(client, campaign, n, deadline, rogue=n == 0)

            return await asyncio.gather(*(agent(n) for n in range(AGENTS)))

        results = asyncio.run(team())

    clients = [c for c, _ in results]
    work = [w for _, done in results for w in done]
    assert [e for c in clients for e in c.errors] == []  # no lock error, no other failure
    # No idea run twice, and every idea finished (the agents had time for all of them).
    by_idea = [w["idea"] for w in work]
    assert sorted(by_idea) == sorted(set(by_idea)) == sorted(ideas)
    assert all(len(done) >= 1 for _, done in results), "an agent got no work"
    # Nothing lost: every trial an agent made is in the ledger, scored, its idea done.
    for w in work:
        row = lab.db.execute("SELECT score, idea_id, surface, diff_stat FROM trials WHERE id = ?", [w["trial"]]).fetchone()
        assert row[0] is not None and row[0] == w["score"] and row[1] == w["idea"] and row[2] == w["surface"]
        # No diff left its surface.
        assert set(json.loads(row[3])["files"]) <= {SURFACE_FILES[w["surface"]]}, row[3]
    assert lab.db.execute("SELECT COUNT(*) FROM ideas WHERE status != 'done'").fetchone()[0] == 0
    assert lab.db.execute("SELECT COUNT(*) FROM journal WHERE error LIKE '%locked%'").fetchone()[0] == 0
    latencies = sorted(x for c in clients for x in c.latencies)
    print(f"{len(work)} trials by {AGENTS} agents; tool-call p50 {latencies[len(latencies) // 2]:.3f} s, "
          f"p99 {latencies[int(len(latencies) * 0.99)]:.3f} s over {len(latencies)} calls")
