"""`sotalab demo` end to end over MCP stdio in a fresh lab home: the paper's number is
reproduced, two honest trials are audited valid with intervals, the planted cheat is
caught, the campaign is finalized on the held-out split, a report is written; a second
run reuses everything it built."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from conftest import require
from sotalab.client import demo
from sotalab.tools import ledger
from sotalab.tools.home import Lab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    require(shutil.which("uv") is not None, "the demo builds the example's venv with uv")
    home = tmp_path_factory.mktemp("demo") / "lab"
    return (home, *run_demo(home))


def run_demo(home) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = demo.main(["--home", str(home)])
    return code, out.getvalue()


def campaign_id(lab: Lab) -> int:
    return lab.db.execute("SELECT id FROM campaigns WHERE name = ?", [demo.CAMPAIGN_NAME]).fetchone()[0]


def audits_by_trial(lab: Lab) -> dict[int, dict]:
    rows = lab.db.query("SELECT * FROM audits WHERE depth = 'full' ORDER BY id")
    return {r["trial_id"]: dict(r, checks=ledger.loads(r["checks"], [])) for r in rows}


def plan_trials(lab: Lab) -> dict[str, dict]:
    hypotheses = {t["hypothesis"]: name for name, t in demo.example_trials().items()}
    rows = lab.db.query("SELECT * FROM trials WHERE kind != 'baseline' ORDER BY id")
    return {hypotheses[r["hypothesis"]]: dict(r) for r in rows}


def test_demo_runs_end_to_end(first_run):
    home, code, out = first_run
    assert code == 0, out[-3000:]
    for n, role in enumerate(("resource", "objective", "init", "fix", "ideator", "scheduler", "monitor",
                              "supervisor"), start=1):
        assert f"[{n}/8 {role}]" in out
    assert "reported: TinyNet (ours) / Accuracy (%) = 58.0" in out
    assert "reproduced within" in out and "NOT reproduced" not in out
    assert "Leaderboard" in out and "Lineage" in out


def test_the_cheat_is_caught_and_the_honest_gains_are_valid(first_run):
    home, code, _ = first_run
    assert code == 0
    lab = Lab.open(home)
    trials = plan_trials(lab)
    assert set(trials) == {name for name, *_ in demo.PLAN}
    audits = audits_by_trial(lab)
    cheat = audits[trials["cheat_monkeypatch_metric"]["id"]]
    assert cheat["verdict"] == "invalid"
    assert "monkeypatch-metric" in json.dumps(cheat["checks"])
    assert trials["cheat_monkeypatch_metric"]["label"] == "disqualified"
    for name in ("honest_normalise", "honest_learning_rate"):
        audit = audits[trials[name]["id"]]
        assert audit["verdict"] == "valid", audit["reason"]
        assert not [c for c in audit["checks"] if c["verdict"] == "fail"]
        significance = next(c for c in audit["checks"] if c["name"] == "significance")
        assert "interval" in json.dumps(significance).lower()
    assert trials["honest_learning_rate"]["score"] > trials["honest_normalise"]["score"] > \
        lab.db.execute("SELECT score FROM trials WHERE kind = 'baseline'").fetchone()[0]


def test_the_report_and_winning_patch_are_in_the_lab_home(first_run):
    home, code, out = first_run
    assert code == 0
    folder = home / "reports" / f"campaign-{campaign_id(Lab.open(home))}"  # written by campaign_report
    report, patch = folder / "report.md", folder / "winning.patch"
    assert str(report) in out
    text = report.read_text()
    assert "## Audits" in text and "invalid" in text and "held-out" in text
    diff = patch.read_text()
    # The winner is the chained honest trial: normalisation plus the learning rate.
    assert "+LEARNING_RATE = 0.005" in diff and "self.mean" in diff and "metrics.accuracy" not in diff
    assert diff.count("diff --git ") == 1, "only the committed change (train.py), no evaluation byproducts"


def test_a_second_run_reuses_what_the_first_built(first_run):
    home, code, _ = first_run
    assert code == 0
    lab = Lab.open(home)
    before = {
        "trials": lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0],
        "audits": lab.db.execute("SELECT COUNT(*) FROM audits").fetchone()[0],
        "evaluations": lab.db.execute("SELECT COUNT(*) FROM journal WHERE tool = 'trial_evaluate'").fetchone()[0],
        "campaigns": lab.db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0],
    }
    code, out = run_demo(home)
    assert code == 0, out[-3000:]
    assert "resuming campaign" in out and "(cached)" in out and "(reused)" in out
    after = {
        "trials": lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0],
        "audits": lab.db.execute("SELECT COUNT(*) FROM audits").fetchone()[0],
        "evaluations": lab.db.execute("SELECT COUNT(*) FROM journal WHERE tool = 'trial_evaluate'").fetchone()[0],
        "campaigns": lab.db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0],
    }
    assert after == before
    assert (home / "reports" / f"campaign-{campaign_id(lab)}" / "report.md").exists()


def test_the_paper_reports_what_the_example_measures():
    """The PDF's reported baseline is measured from the example, not invented: regenerate
    it with examples/tinynet/make_paper.py when the example changes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_paper", demo.EXAMPLE / "make_paper.py")
    make_paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_paper)
    assert make_paper.main(["--check"]) == 0


def test_role_prompts_and_skills_over_stdio_see_the_demo_campaign(first_run):
    """What a host that does not read skill folders gets: the role as a prompt with the
    campaign's live state, and the skill's files as resources, from `sotalab serve`."""
    import asyncio

    from sotalab.client.session import LabSession

    home, code, _ = first_run
    assert code == 0
    lab = Lab.open(home)
    campaign = lab.db.execute("SELECT id FROM campaigns WHERE name = ?", [demo.CAMPAIGN_NAME]).fetchone()[0]
    cheat = plan_trials(lab)["cheat_monkeypatch_metric"]["id"]

    async def scenario():
        async with LabSession(home=home, verbose=False, server_log=home / "reports" / "test-server.log") as session:
            prompt = await session.prompt("supervisor", campaign=campaign)
            red_lines = await session.resource("sotalab://skills/supervisor/references/red-lines.md")
            return prompt, red_lines

    prompt, red_lines = asyncio.run(scenario())
    assert "You are acting as the sotalab **supervisor** role" in prompt
    failures = prompt.split("### Recent failures", 1)[1].split("###", 1)[0]
    assert f"trial {cheat} (code): disqualified" in failures
    assert "monkeypatch-metric" in red_lines
