"""The MLflow export against a real local tracking store (sqlite), read back with
mlflow.search_runs: each trial a run with its params, metrics, telemetry, tags,
artifacts and lineage; exporting again updates the same runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import require, sotalab_command
from demo_lab import demo_campaign, finished_demo_lab
from sotalab.tools import ledger
from sotalab.tools.home import Lab
from sotalab.tools.mlflow_export import export

try:
    import mlflow
except ImportError:  # the optional extra; the dev group installs it, so CI has it
    mlflow = None

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    require(mlflow is not None, "the MLflow export needs the extra sotalab[mlflow]")
    home = finished_demo_lab(tmp_path_factory)
    lab = Lab.open(home)
    cid = demo_campaign(lab)
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    first = export(lab, cid, uri)
    return {"home": home, "lab": lab, "campaign": cid, "uri": uri, "first": first}


def runs_of(exported) -> dict[str, object]:
    mlflow.set_tracking_uri(exported["uri"])
    found = mlflow.search_runs(experiment_ids=[exported["first"].experiment_id], output_format="list")
    return {run.data.tags["sotalab.trial"]: run for run in found}


def test_each_trial_is_a_run_with_the_ledgers_numbers(exported):
    lab, cid = exported["lab"], exported["campaign"]
    trials = {str(t["id"]): t for t in lab.db.query("SELECT * FROM trials WHERE campaign_id = ?", [cid])}
    runs = runs_of(exported)
    assert set(runs) == set(trials)
    for trial_id, trial in trials.items():
        run = runs[trial_id]
        assert run.data.params["kind"] == trial["kind"]
        assert run.data.params["hypothesis"] == trial["hypothesis"][:500]
        assert run.data.params["parent"] == str(trial["parent_id"] or "")
        assert run.data.params["commit"] == (trial["commit_sha"] or "")
        assert run.data.tags["label"] == (trial["label"] or "unscored")
        assert run.data.tags["integrity"] == (trial["integrity"] or "unknown")
        if trial["score"] is not None:
            assert run.data.metrics["accuracy"] == pytest.approx(trial["score"])
        for seed, score in (ledger.loads(trial["seed_scores"], {}) or {}).items():
            assert run.data.metrics[f"accuracy/seed_{seed}"] == pytest.approx(score)
        parent = trial["parent_id"]
        assert run.data.tags.get("mlflow.parentRunId") == (runs[str(parent)].info.run_id if parent else None)
    verdicts = {str(a["trial_id"]): a["verdict"] for a in lab.db.query(
        "SELECT trial_id, verdict FROM audits WHERE campaign_id = ? AND depth = 'full' ORDER BY id", [cid])}
    assert verdicts and all(runs[t].data.tags["audit_verdict"] == v for t, v in verdicts.items())
    assert "invalid" in verdicts.values()


def test_artifacts_and_telemetry(exported):
    client = mlflow.MlflowClient(exported["uri"])
    lab = exported["lab"]
    winner = lab.db.execute("SELECT trial_id FROM finalizations WHERE campaign_id = ?",
                            [exported["campaign"]]).fetchone()[0]
    run = runs_of(exported)[str(winner)]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"diff.patch", "trial.md"}
    diff = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/diff.patch")
    assert "+LEARNING_RATE = 0.005" in diff
    series = [key for key in run.data.metrics if key.endswith("/rss_mb")]
    assert series, "the evaluation run's telemetry is exported"
    history = client.get_metric_history(run.info.run_id, series[0])
    assert len(history) >= 1 and [m.step for m in history] == list(range(len(history)))


def test_exporting_again_updates_the_same_runs(exported):
    before = runs_of(exported)
    client = mlflow.MlflowClient(exported["uri"])
    evaluated = next(run for run in before.values() if any(k.endswith("/rss_mb") for k in run.data.metrics))
    key = next(k for k in evaluated.data.metrics if k.endswith("/rss_mb"))
    last = evaluated.info.run_id
    history_before = len(client.get_metric_history(last, key))
    again = export(exported["lab"], exported["campaign"], exported["uri"])
    assert again.created == 0 and again.updated == len(before)
    after = runs_of(exported)
    assert {t: r.info.run_id for t, r in after.items()} == {t: r.info.run_id for t, r in before.items()}
    assert len(client.get_metric_history(last, "accuracy")) == 1  # unchanged metrics are not logged again
    assert len(client.get_metric_history(last, key)) == history_before  # telemetry is written once


def test_campaign_report_to_mlflow_writes_the_labs_own_store(exported):
    from sotalab.tools.invoke import invoke
    from sotalab.tools.mlflow_export import default_tracking_uri

    lab, cid = exported["lab"], exported["campaign"]
    first = invoke(lab, "campaign_report", {"campaign": cid, "to": "mlflow"})
    assert first["tracking_uri"] == default_tracking_uri(lab) and first["created"] == len(exported["first"].runs)
    again = invoke(lab, "campaign_report", {"campaign": cid, "to": "mlflow"})
    assert again["created"] == 0 and again["updated"] == first["created"]
    assert "markdown" not in first  # the export's answer, not the files'


def test_the_cli_exports_and_refuses_a_bad_store_in_one_line(exported):
    done = subprocess.run([*sotalab_command(), "--home", str(exported["home"]), "export", "mlflow", "--campaign",
                           str(exported["campaign"]), "--tracking-uri", exported["uri"]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "0 run(s) created" in done.stdout
    bad = subprocess.run([*sotalab_command(), "--home", str(exported["home"]), "export", "mlflow", "--campaign",
                          str(exported["campaign"]), "--tracking-uri", "nonsense://nowhere"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "MLflow export to nonsense://nowhere failed" in bad.stderr and "--tracking-uri" in bad.stderr


def test_mlflow_is_imported_only_by_the_export():
    probe = ("import sys; from sotalab.server.app import build_server; from sotalab.tools.home import Lab; "
             "import tempfile; build_server(Lab.open(tempfile.mkdtemp())); print('mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
