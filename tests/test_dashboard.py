"""The web dashboard (`sotalab serve --http`, /ui/) in a real headless Chromium, against
a lab with the demo's finished campaign, a trial whose hypothesis is hostile markup and
a run that is running while the page watches it."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image as PILImage

from browser import CHROMIUM, Browser
from conftest import REPO, require
from demo_lab import HOSTILE, call, demo_campaign, finished_demo_lab
from mcp_helpers import http_server
from sotalab.tools import ledger
from sotalab.tools.home import Lab

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("SOTALAB_TEST_ARTIFACTS", REPO / "test-artifacts"))
# Long enough to outlive the module (it is cancelled at the end).
LOOP = ('i=0; while [ $i -lt 9000 ]; do echo "step $i <script>window.pwned=1</script>"; '
        'i=$((i+1)); sleep 0.2; done')


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory):
    require(CHROMIUM is not None, "the dashboard tests need Chromium (Debian package chromium)")
    home = finished_demo_lab(tmp_path_factory)
    lab = Lab.open(home)
    cid = demo_campaign(lab)
    call(lab, "campaign_update", campaign=cid, status="active")  # the demo closed it; new trials need it open
    hostile = call(lab, "trial_create", campaign=cid, kind="param", hypothesis=HOSTILE)["id"]
    run = call(lab, "run_start", trial=hostile, command=["sh", "-c", LOOP], telemetry_hz=5,
               budget={"wall_s": 1800})["id"]
    yield {"home": home, "lab": lab, "campaign": cid, "hostile": hostile, "run": run}
    call(lab, "run_cancel", run=run)


@pytest.fixture(scope="module")
def server(lab_state):
    with http_server(lab_state["home"]) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chrome = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


def show(browser: Browser, server: str, route: str, ready: str) -> None:
    browser.open(f"{server}/ui/#/{route}")
    browser.wait_for(ready)


def number(text: str) -> float:
    return float(text.strip().split()[0])


def click(browser: Browser, selector: str) -> None:
    browser.evaluate(f"document.querySelector({json.dumps(selector)})"
                     ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")


def test_the_numbers_on_the_page_are_the_ledgers(lab_state, server, browser):
    lab, cid = lab_state["lab"], lab_state["campaign"]
    show(browser, server, f"campaign/{cid}", "document.querySelectorAll('tr[data-trial]').length > 3")
    page = browser.evaluate("""(() => {
        const text = (id) => document.getElementById(id).textContent;
        const trials = {};
        for (const row of document.querySelectorAll('tr[data-trial]')) {
            trials[row.dataset.trial] = {score: row.querySelector('.score').textContent,
                                         seeds: row.querySelector('.seeds').textContent};
        }
        return {reported: text('reported'), reproduced: text('reproduced'), claim: text('claim'),
                heldout: text('heldout'), trials};
    })()""")
    objective = json.loads(lab.db.execute("SELECT objective FROM campaigns WHERE id = ?", [cid]).fetchone()[0])
    rows = {str(r["id"]): r for r in lab.db.query("SELECT * FROM trials WHERE campaign_id = ?", [cid])}
    baseline = lab.db.execute("SELECT baseline_trial_id FROM campaigns WHERE id = ?", [cid]).fetchone()[0]
    assert number(page["reported"]) == pytest.approx(objective["reported"], abs=5e-5)
    assert number(page["reproduced"]) == pytest.approx(rows[str(baseline)]["score"], abs=5e-5)
    assert set(page["trials"]) == set(rows)
    for trial_id, shown in page["trials"].items():
        score = rows[trial_id]["score"]
        assert shown["score"] == ("-" if score is None else f"{score:.4f}")
        for seed, value in (ledger.loads(rows[trial_id]["seed_scores"], {}) or {}).items():
            assert f"{seed}: {value:.4f}" in shown["seeds"]
    claim = call(lab, "trial_get", ranked=True, campaign=cid, claims_only=True, limit=1)["entries"][0]["trial"]
    assert number(page["claim"]) == pytest.approx(claim["score"], abs=5e-5)
    final = json.loads(lab.db.execute("SELECT result FROM finalizations WHERE campaign_id = ? ORDER BY id DESC",
                                      [cid]).fetchone()[0])
    assert number(page["heldout"]) == pytest.approx(final["gain"], abs=5e-5)
    browser.screenshot(ARTIFACTS / "dashboard-campaign.png")


def test_a_hostile_hypothesis_stays_text(lab_state, server, browser):
    cid, hostile = lab_state["campaign"], lab_state["hostile"]
    show(browser, server, f"campaign/{cid}", f"document.querySelector('tr[data-trial=\"{hostile}\"]')")
    cell = browser.evaluate(f"""(() => {{
        const cell = document.querySelector('tr[data-trial="{hostile}"] .hypothesis');
        return {{text: cell.textContent, elements: cell.querySelectorAll('*').length,
                 scripts: document.querySelectorAll('script').length, pwned: window.pwned ?? null,
                 images: document.querySelectorAll('img').length}};
    }})()""")
    assert cell == {"text": HOSTILE, "elements": 0, "scripts": 1, "pwned": None, "images": 0}
    node = browser.evaluate(f"document.querySelector('g.tree-node[data-trial=\"{hostile}\"] title').textContent")
    assert node == HOSTILE


def test_a_lineage_click_shows_the_trials_committed_diff(lab_state, server, browser):
    lab, cid = lab_state["lab"], lab_state["campaign"]
    winner = call(lab, "trial_get", ranked=True, campaign=cid, claims_only=True, limit=1)["entries"][0]["trial"]["id"]
    show(browser, server, f"campaign/{cid}", f"document.querySelector('g.tree-node[data-trial=\"{winner}\"]')")
    click(browser, f'g.tree-node[data-trial="{winner}"]')
    diff = browser.wait_for("document.getElementById('diff')?.textContent")
    expected = call(lab, "workspace_diff", trial=winner, committed=True)["diff"]
    assert diff.strip() == expected.strip() and "LEARNING_RATE" in diff


def test_an_audit_shows_its_findings(lab_state, server, browser):
    lab, cid = lab_state["lab"], lab_state["campaign"]
    invalid = lab.db.execute("SELECT id FROM audits WHERE campaign_id = ? AND verdict = 'invalid' ORDER BY id DESC",
                             [cid]).fetchone()[0]
    show(browser, server, f"campaign/{cid}", f"document.querySelector('tr[data-audit=\"{invalid}\"]')")
    click(browser, f'tr[data-audit="{invalid}"]')
    text = browser.wait_for("document.getElementById('audit')?.textContent")
    assert "invalid" in text and "monkeypatch-metric" in text


def test_a_running_run_updates_live(lab_state, server, browser):
    run = lab_state["run"]
    show(browser, server, f"run/{run}", "document.getElementById('log')?.textContent.includes('step')")
    first = browser.evaluate("[Number(document.getElementById('run-samples').textContent),"
                             " document.getElementById('log').textContent.length]")
    assert browser.evaluate("document.getElementById('run-status').textContent") == "running"
    # Polling, no reload: more samples and more log arrive while the page is open.
    browser.wait_for(f"Number(document.getElementById('run-samples').textContent) > {first[0]} && "
                     f"document.getElementById('log').textContent.length > {first[1]}", timeout=45)
    assert browser.evaluate("document.querySelector('#cpu-chart polyline') !== null")
    assert browser.evaluate("window.pwned ?? null") is None
    assert "<script>window.pwned=1</script>" in browser.evaluate("document.getElementById('log').textContent")
    shot = browser.screenshot(ARTIFACTS / "dashboard-run.png")
    assert shot.stat().st_size > 5000


def test_nothing_is_fetched_from_outside_and_nothing_errs(lab_state, server, browser):
    show(browser, server, "campaigns", "document.querySelector('tr[data-campaign]')")
    outside = [url for url in browser.requests if not url.startswith((server + "/", "data:", "about:"))]
    assert outside == []
    assert browser.errors == []
    assert any(url.startswith(f"{server}/ui/api/campaign_view") for url in browser.requests)


def test_the_readme_screenshot_comes_from_this_test(lab_state, server, browser):
    """SOTALAB_UPDATE_SCREENSHOT=1 refreshes docs/dashboard.png from a real page (in 64
    colours: a third of the size, the same picture for a page of flat colours)."""
    show(browser, server, f"campaign/{lab_state['campaign']}", "document.querySelector('#lineage')")
    shot = browser.screenshot(ARTIFACTS / "dashboard.png")
    if os.environ.get("SOTALAB_UPDATE_SCREENSHOT") == "1":
        flat = PILImage.open(shot).convert("RGB").quantize(colors=64, method=PILImage.Quantize.FASTOCTREE)
        flat.save(REPO / "docs" / "dashboard.png", optimize=True)
    assert (REPO / "docs" / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ the web door's guards

def fetch(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_api_runs_only_read_only_tools(lab_state, server):
    status, body = fetch(f"{server}/ui/api/trial_create", b'{"campaign": 1, "kind": "param"}',
                         {"Content-Type": "application/json"})
    assert status == 404 and "not available" in body
    status, body = fetch(f"{server}/ui/api/campaign_view", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON object" in body
    status, body = fetch(f"{server}/ui/api/campaign_view", b'{"campaign": 999999}', {"Content-Type": "application/json"})
    assert status == 400 and "no campaign" in body


def test_the_page_has_the_same_guards_as_mcp(lab_state, server):
    status, _ = fetch(f"{server}/ui/", headers={"Host": "evil.example"})
    assert status == 421
    status, _ = fetch(f"{server}/ui/api/campaign_get", b"{}", {"Origin": "http://evil.example",
                                                                 "Content-Type": "application/json"})
    assert status == 403
    status, page = fetch(f"{server}/ui/")
    assert status == 200 and not re.search(r"""(src|href)\s*=|@import|url\(""", page), "the page loads nothing"
    with http_server(lab_state["home"], "--token", "sekrit") as (base, _):
        assert fetch(f"{base}/ui/")[0] == 401
        assert fetch(f"{base}/ui/", headers={"Authorization": "Bearer sekrit"})[0] == 200
