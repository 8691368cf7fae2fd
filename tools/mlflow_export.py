"""A campaign's trials as MLflow runs, so they show up where people already track runs.

One MLflow experiment per campaign; one run per trial:

- params: hypothesis, kind, parent (trial id), commit - as first exported (MLflow
  params never change; the tags below always hold the current values);
- metrics: the primary score (mean over seeds) and its sd, the gain over the baseline,
  every metric's mean, and each seed's value as ``<metric>/seed_<seed>``;
- run telemetry as metric steps, one series per run and field (``run_<id>/cpu_pct``...);
- tags: label, audit verdict, integrity level, the sotalab ids, the commit, and the
  lineage as ``mlflow.parentRunId`` (the parent trial's run);
- artifacts: the trial's committed diff (``diff.patch``) and a short report (``trial.md``).

Exporting again finds each trial's run by its ``sotalab.trial`` tag and updates it:
nothing is duplicated, metrics that did not change are not logged again, and a run's
telemetry is written once.

MLflow is the optional extra ``sotalab[mlflow]``, imported only here, only when used.
The tool is ``campaign_report(to="mlflow")``; ``sotalab export mlflow`` takes another store.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from . import campaign_view, ledger, workspaces
from .campaign_view import CampaignView, TrialView
from .errors import InvalidInput, LabError
from .home import Lab
from .runs.telemetry import read_series

FAILED_LABELS = {"crash", "preflight_crash", "timeout", "oom", "gpu_oom", "metric_missing", "size_blocked"}
TELEMETRY_FIELDS = ("cpu_pct", "rss_mb", "util", "mem_mb", "run_mem_mb", "power_w")
MAX_PARAM_CHARS = 500
BATCH = 900  # MLflow takes at most 1000 metrics per log_batch


class ExportedRun(BaseModel):
    trial: int
    run_id: str
    created: bool = Field(description="false: an earlier export's run, updated")


class ExportOut(BaseModel):
    campaign: int
    tracking_uri: str
    experiment: str
    experiment_id: str
    runs: list[ExportedRun]
    created: int
    updated: int


def _client(tracking_uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise LabError("MLflow is not installed", hint="install the extra: pip install 'sotalab[mlflow]'") from None
    return MlflowClient(tracking_uri=tracking_uri)


def default_tracking_uri(lab: Lab) -> str:
    folder = lab.path("mlflow")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside the database for a sqlite store (MLflow's default is the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts")
    return None


def _experiment(client, view: CampaignView, tracking_uri: str) -> tuple[str, str]:
    name = f"sotalab {view.name} (campaign {view.id})"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return name, found.experiment_id
    return name, client.create_experiment(name, artifact_location=_artifact_location(tracking_uri),
                                          tags={"sotalab.campaign": str(view.id)})


def _metrics(view: CampaignView, trial: TrialView, lab: Lab) -> dict[str, float]:
    wanted: dict[str, float] = {}
    if trial.score is not None:
        wanted[view.metric] = trial.score
    if trial.score_std is not None:
        wanted[f"{view.metric}_std"] = trial.score_std
    if trial.delta_baseline is not None:
        wanted["delta_baseline"] = trial.delta_baseline
    for seed, value in trial.seed_scores.items():
        wanted[f"{view.metric}/seed_{seed}"] = value
    row = lab.db.execute("SELECT metrics FROM trials WHERE id = ?", [trial.id]).fetchone()
    for name, summary in (ledger.loads(row[0], {}) or {}).items():
        if name != view.metric and isinstance(summary, dict) and summary.get("mean") is not None:
            wanted[name] = float(summary["mean"])
            for seed, value in (summary.get("values") or {}).items():
                wanted[f"{name}/seed_{seed}"] = float(value)
    return wanted


def _tags(view: CampaignView, trial: TrialView, parent_run: str | None) -> dict[str, str]:
    tags = {"sotalab.trial": str(trial.id), "sotalab.campaign": str(view.id), "label": trial.label or "unscored",
            "audit_verdict": trial.audit.verdict if trial.audit else "none", "integrity": trial.integrity,
            "sotalab.commit": trial.commit_sha or "", "mlflow.note.content": trial.hypothesis}
    if parent_run:
        tags["mlflow.parentRunId"] = parent_run
    return tags


def _telemetry(lab: Lab, client, run_id: str, trial: TrialView, done: set[str]) -> set[str]:
    """Log the series of the trial's runs not exported before; returns the runs now done."""
    from mlflow.entities import Metric

    for sotalab_run in trial.runs:
        if str(sotalab_run) in done:
            continue
        row = lab.db.execute("SELECT run_dir, status, started_at FROM runs WHERE id = ?", [sotalab_run]).fetchone()
        if row is None or row[1] in ("queued", "running"):
            continue  # an unfinished run's series is exported once it has ended
        series = read_series(Path(row[0] or lab.path("runs", sotalab_run)), max_points=1000)
        fields = series.get("fields", [])
        start_ms = int(time.time() * 1000)
        metrics = []
        for i, name in enumerate(fields):
            if not name.endswith(TELEMETRY_FIELDS) or name == "t":
                continue
            for step, point in enumerate(series.get("points", [])):
                if i < len(point) and isinstance(point[i], (int, float)):
                    t = point[0] if isinstance(point[0], (int, float)) else step
                    metrics.append(Metric(f"run_{sotalab_run}/{name}", float(point[i]), start_ms + int(t * 1000), step))
        for at in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[at:at + BATCH])
        done.add(str(sotalab_run))
    return done


def _trial_report(view: CampaignView, trial: TrialView) -> str:
    audit = trial.audit
    verdict = f"{audit.verdict} ({audit.depth}, failed: {', '.join(audit.failed) or 'none'})" if audit else "none"
    lines = [f"# Trial {trial.id} ({trial.kind}) of campaign {view.id} {view.name}", "",
             "Hypothesis (as written by whoever created the trial):", "",
             "    " + trial.hypothesis.replace("\n", "\n    "),
             "", f"- {view.metric}: {trial.score} \u00b1 {trial.score_std} (per seed: {trial.seed_scores})",
             f"- gain over the baseline: {trial.delta_baseline}", f"- label: {trial.label}",
             f"- audit: {verdict}",
             f"- integrity: {trial.integrity}", f"- commit: {trial.commit_sha}"]
    return "\n".join(lines) + "\n"


def _artifacts(lab: Lab, client, run_id: str, view: CampaignView, trial: TrialView) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "trial.md"
        report.write_text(_trial_report(view, trial))
        client.log_artifact(run_id, str(report))
        if trial.commit_sha:
            _, diff = workspaces.committed_diff(lab, trial.id)
            patch = Path(tmp) / "diff.patch"
            patch.write_text(diff)
            client.log_artifact(run_id, str(patch))


def export(lab: Lab, campaign_id: int, tracking_uri: str | None = None) -> ExportOut:
    view = campaign_view.build(lab, campaign_id)
    uri = tracking_uri or default_tracking_uri(lab)
    try:
        client = _client(uri)
        from mlflow.entities import Metric, Param, RunTag

        name, experiment_id = _experiment(client, view, uri)
        existing = {r.data.tags["sotalab.trial"]: r for r in client.search_runs(
            [experiment_id], filter_string=f"tags.`sotalab.campaign` = '{view.id}'", max_results=10_000)
            if "sotalab.trial" in r.data.tags}
        run_of: dict[int, str] = {}
        exported = []
        for trial in sorted(view.trials, key=lambda t: t.id):  # parents before children
            previous = existing.get(str(trial.id))
            if previous is None:
                run_id = client.create_run(experiment_id, run_name=f"trial {trial.id} {trial.kind}",
                                           tags={"sotalab.trial": str(trial.id),
                                                 "sotalab.campaign": str(view.id)}).info.run_id
                params, metrics, done = {}, {}, set()
            else:
                run_id = previous.info.run_id
                params, metrics = previous.data.params, previous.data.metrics
                done = set(filter(None, previous.data.tags.get("sotalab.telemetry_runs", "").split(",")))
            run_of[trial.id] = run_id
            wanted_params = {"hypothesis": trial.hypothesis[:MAX_PARAM_CHARS], "kind": trial.kind,
                             "parent": str(trial.parent_id or ""), "commit": trial.commit_sha or ""}
            now = int(time.time() * 1000)
            done = _telemetry(lab, client, run_id, trial, done)
            tags = _tags(view, trial, run_of.get(trial.parent_id)) | {"sotalab.telemetry_runs": ",".join(sorted(done))}
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in _metrics(view, trial, lab).items() if metrics.get(k) != v],
                params=[Param(k, v) for k, v in wanted_params.items() if k not in params],
                tags=[RunTag(k, v) for k, v in tags.items()])
            _artifacts(lab, client, run_id, view, trial)
            if trial.status == "evaluated":
                client.set_terminated(run_id, "FAILED" if trial.label in FAILED_LABELS else "FINISHED")
            exported.append(ExportedRun(trial=trial.id, run_id=run_id, created=previous is None))
    except LabError:
        raise
    except Exception as exc:  # the store refused (bad URI, unreachable server, locked database...)
        raise InvalidInput(f"MLflow export to {uri} failed: {type(exc).__name__}: {str(exc)[:300]}",
                           hint="check --tracking-uri (e.g. sqlite:///path/mlflow.db or http://host:5000)") from None
    created = sum(r.created for r in exported)
    return ExportOut(campaign=view.id, tracking_uri=uri, experiment=name, experiment_id=experiment_id, runs=exported,
                     created=created, updated=len(exported) - created)
