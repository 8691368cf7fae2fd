"""campaign_report on the demo's finished campaign: everything a reader needs is in the
markdown and the HTML, the numbers are the ledger's, untrusted text stays text."""

from __future__ import annotations

import html.parser
import json
import re
from pathlib import Path

import pytest

from demo_lab import HOSTILE, call, demo_campaign, finished_demo_lab
from sotalab.tools import ledger
from sotalab.tools.home import Lab

pytestmark = pytest.mark.slow
CELL_SPLIT = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    lab = Lab.open(finished_demo_lab(tmp_path_factory))
    cid = demo_campaign(lab)
    call(lab, "campaign_update", campaign=cid, status="active")
    hostile = call(lab, "trial_create", campaign=cid, kind="param", hypothesis=HOSTILE)["id"]
    out = call(lab, "campaign_report", campaign=cid)
    return {"lab": lab, "campaign": cid, "hostile": hostile, "out": out,
            "md": Path(out["markdown"]).read_text(), "html": Path(out["html"]).read_text()}


def test_the_report_says_where_the_number_came_from_and_how_it_reproduced(report):
    lab, md = report["lab"], report["md"]
    assert "Table 1" in md and "page 1" in md and "“58.0”" in md and "TinyNet (ours)" in md
    baseline = lab.db.execute("SELECT t.score FROM trials t JOIN campaigns c ON c.baseline_trial_id = t.id "
                              "WHERE c.id = ?", [report["campaign"]]).fetchone()[0]
    assert f"accuracy {baseline:.4f} reproduced by the server versus 0.5800 reported; gap {baseline - 0.58:+.4f}" in md


def test_every_trial_is_in_the_report_with_its_seeds_label_and_audit(report):
    lab, md = report["lab"], report["md"]
    rows = {int(CELL_SPLIT.split(line)[1]): CELL_SPLIT.split(line)[1:-1]
            for line in md.splitlines() if re.match(r"\| \d+ \|", line) and len(CELL_SPLIT.split(line)) == 12}
    trials = list(lab.db.query("SELECT * FROM trials WHERE campaign_id = ?", [report["campaign"]]))
    assert set(rows) == {t["id"] for t in trials}, "one 10-column row per trial, hostile text included"
    verdicts = {a["trial_id"]: a["verdict"] for a in lab.db.query(
        "SELECT trial_id, verdict FROM audits WHERE campaign_id = ? AND depth = 'full' ORDER BY id", [report["campaign"]])}
    for trial in trials:
        cells = [c.strip() for c in rows[trial["id"]]]
        for seed, score in (ledger.loads(trial["seed_scores"], {}) or {}).items():
            assert f"{seed}: {score:.4f}" in cells[5]
        assert cells[7] == (trial["label"] or "\\-").replace("_", "\\_")
        if trial["id"] in verdicts:
            assert cells[8].startswith(verdicts[trial["id"]])
        assert cells[9] in ("isolated", "in\\_process", "unknown")
    assert "monkeypatch-metric at train.py" in md  # the cheat's finding, with its place


def test_the_winning_patch_and_the_held_out_result(report):
    lab, md, out = report["lab"], report["md"], report["out"]
    final = json.loads(lab.db.execute("SELECT result FROM finalizations WHERE campaign_id = ? ORDER BY id DESC",
                                      [report["campaign"]]).fetchone()[0])
    assert out["finalized"] and out["winning_trial"] == final["best"]["trial"]
    patch = (Path(out["folder"]) / "winning.patch").read_text()
    assert patch == call(lab, "workspace_diff", trial=out["winning_trial"], against="baseline", committed=True, limit=60_000)["diff"]
    assert "+LEARNING_RATE = 0.005" in patch and "self.mean" in patch and patch.count("diff --git ") == 1
    assert f"gain {final['gain']:+.4f}, 95% interval \\[{final['interval'][0]:+.4f}, {final['interval'][1]:+.4f}\\]" in md
    assert "integrity isolated" in md or "integrity in\\_process" in md


def test_the_plots_are_beside_the_markdown_and_inside_the_html(report):
    folder, md, page = Path(report["out"]["folder"]), report["md"], report["html"]
    for name in ("progress.png", "lineage.png", "telemetry.png"):
        assert f"]({name})" in md and (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count("src='data:image/png;base64,") == 3


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_text_stays_text_in_both_formats(report):
    md, page = report["md"], report["html"]
    assert "<script" not in md and "<img" not in md and "<b>" not in md
    assert "&lt;script&gt;" in md and "\\[link\\]" in md
    parsed = Tags()
    parsed.feed(page)
    names = [tag for tag, _ in parsed.tags]
    assert "script" not in names and "b" not in names
    assert all(attrs["src"].startswith("data:image/png;base64,") for tag, attrs in parsed.tags if tag == "img")
    csp = next(attrs["content"] for tag, attrs in parsed.tags if tag == "meta" and attrs.get("http-equiv"))
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert any(HOSTILE in chunk for chunk in parsed.text), "the hypothesis is shown, as text"


def test_writing_it_again_replaces_it(report):
    again = call(report["lab"], "campaign_report", campaign=report["campaign"])
    assert again["files"] == report["out"]["files"]
    assert Path(again["markdown"]).read_text() == report["md"]


def test_a_campaign_with_nothing_scored_still_has_a_report(lab, call):
    cid = call("campaign_create", name="fresh", objective={"metric": "acc", "direction": "max", "reported": 0.5},
               evaluator={"command": ["true"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]})["id"]
    out = call("campaign_report", campaign=cid)
    md = Path(out["markdown"]).read_text()
    assert "not scored yet" in md and "No claim" in md and "Not finalized" in md
    assert out["winning_trial"] is None and "winning.patch" not in out["files"]
