"""Campaign pictures as PNG, for hosts that show tool images but not apps, and for the
campaign report: the progress curve, the lineage tree, a run's telemetry.

matplotlib is imported when a picture is drawn, not when the server starts (it costs
about half a second). Figures are built with ``matplotlib.figure.Figure`` rather than
pyplot: no global state, so two tool calls can draw at once from worker threads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from . import campaign_view
from .campaign_view import MAX_VIEW_TRIALS, CampaignView, TrialView
from .errors import InvalidInput, NotFound
from .home import Lab
from .images import Image, png_image
from .runs.telemetry import read_series

PlotKind = Literal["progress", "lineage", "telemetry"]
DPI = 80
LINEAGE_TRIALS = 40  # more rows than this are unreadable in one picture (and too big for a tool result)
MAX_TICKS = 25
# One colour per trial label; the dashboard (server/ui/dashboard.css) uses the same ones.
LABEL_COLOURS = {"keep": "#2e7d32", "discard": "#9e9e9e", "disqualified": "#c62828", None: "#1565c0"}
FAILURE_COLOUR = "#ef6c00"
VERDICT_MARKS = {"valid": "✓", "invalid": "✗", "inconclusive": "?"}


def label_colour(label: str | None) -> str:
    return LABEL_COLOURS.get(label, FAILURE_COLOUR)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> bytes:
    """The figure as a 64-colour PNG: a third of the size of matplotlib's RGBA one (charts
    have few colours), so a picture fits in a tool result. No Software or date metadata:
    the same data draws the same bytes."""
    from PIL import Image as PILImage

    rgba = io.BytesIO()
    fig.savefig(rgba, format="png", metadata={"Software": None})
    rgba.seek(0)
    small = io.BytesIO()
    PILImage.open(rgba).convert("RGB").quantize(colors=64, method=PILImage.Quantize.FASTOCTREE).save(
        small, format="png", optimize=True)
    return small.getvalue()


def progress_png(view: CampaignView) -> bytes:
    """Score per trial in evaluation order: each seed as a dot, the mean with its seed
    standard deviation, the best so far, the reproduced baseline and the paper's number."""
    scored = sorted((t for t in view.trials if t.seed_scores), key=lambda t: (t.evaluated_at or "", t.id))
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    # One artist per label, not per trial: 200 trials draw in well under a second.
    by_label: dict[str | None, list[int]] = {}
    for x, trial in enumerate(scored):
        by_label.setdefault(trial.label, []).append(x)
    for label, xs in by_label.items():
        colour = label_colour(label)
        seeds = [(x, value) for x in xs for value in scored[x].seed_scores.values()]
        ax.scatter([x for x, _ in seeds], [v for _, v in seeds], s=10, color=colour, alpha=0.5, linewidths=0)
        means = [scored[x].score if scored[x].score is not None else
                 sum(scored[x].seed_scores.values()) / len(scored[x].seed_scores) for x in xs]
        ax.errorbar(xs, means, yerr=[scored[x].score_std or 0.0 for x in xs], fmt="o", color=colour, capsize=3,
                    markersize=5, label=label or "unscored")
    best_so_far, best = [], None
    for trial in scored:
        if trial.label != "disqualified" and trial.score is not None and (
                best is None or (trial.score > best if view.direction == "max" else trial.score < best)):
            best = trial.score
        best_so_far.append(best)
    if scored:
        ax.step(range(len(scored)), best_so_far, where="post", color="#444", linewidth=1, label="best so far")
        every = -(-len(scored) // MAX_TICKS)
        ax.set_xticks(range(0, len(scored), every), [f"#{t.id}" for t in scored[::every]])
    if view.baseline.reproduced is not None:
        ax.axhline(view.baseline.reproduced, color="#1565c0", linestyle=":", linewidth=1, label="baseline (reproduced)")
    if view.baseline.reported is not None:
        ax.axhline(view.baseline.reported, color="#6a1b9a", linestyle="--", linewidth=1, label="paper (reported)")
    ax.set_xlabel("trial (evaluation order)")
    ax.set_ylabel(view.metric)
    ax.set_title(f"{view.name}: {view.metric} per trial ({view.direction})", fontsize=10)
    ax.grid(alpha=0.3)
    if scored or view.baseline.reported is not None:
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _tree_positions(trials: list[TrialView]) -> dict[int, tuple[int, int]]:
    """(depth, row) of every trial: depth-first from the roots, one row per trial."""
    ids = {t.id for t in trials}
    children: dict[int | None, list[int]] = {}
    for t in trials:
        children.setdefault(t.parent_id if t.parent_id in ids else None, []).append(t.id)
    positions: dict[int, tuple[int, int]] = {}
    stack = [(root, 0) for root in reversed(children.get(None, []))]
    while stack:
        node, depth = stack.pop()
        positions[node] = (depth, len(positions))
        stack.extend((child, depth + 1) for child in reversed(children.get(node, [])))
    return positions


def lineage_png(view: CampaignView) -> bytes:
    """The lineage tree: one node per trial, coloured by label, with its score, the
    verdict of its latest audit and the integrity level of its score."""
    by_id = {t.id: t for t in view.trials}
    positions = _tree_positions(view.trials)
    rows = max(len(positions), 1)
    fig = _figure(7, min(1.2 + 0.42 * rows, 14))
    ax = fig.add_subplot()
    from matplotlib.collections import LineCollection

    edges = [[(positions[t.parent_id][0], positions[t.parent_id][1]), (positions[t.parent_id][0], row), (depth, row)]
             for t in view.trials if t.parent_id in positions for depth, row in [positions[t.id]]]
    ax.add_collection(LineCollection(edges, colors="#999", linewidths=1, zorder=1))
    placed = [(by_id[trial_id], depth, row) for trial_id, (depth, row) in positions.items()]
    ax.scatter([d for _, d, _ in placed], [r for _, _, r in placed], s=120, zorder=2,
               color=[label_colour(t.label) for t, _, _ in placed],
               edgecolors=["black" if t.audit else "none" for t, _, _ in placed])
    for trial, depth, row in placed:
        verdict = f" {VERDICT_MARKS.get(trial.audit.verdict, '')} {trial.audit.verdict}" if trial.audit else ""
        score = "-" if trial.score is None else f"{trial.score:.4g}"
        ax.text(depth + 0.18, row, f"#{trial.id} {trial.kind} {score} {trial.label or 'unscored'}{verdict} "
                f"[{trial.integrity}]", fontsize=8, va="center")
    depth_max = max((d for d, _ in positions.values()), default=0)
    ax.set_xlim(-0.3, depth_max + 2.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_off()
    older = f"; {view.trials_omitted} older trial(s) not shown" if view.trials_omitted else ""
    ax.set_title(f"{view.name}: lineage (colour = label, ✓/✗ = audit, [integrity]){older}", fontsize=10)
    return _png(fig)


def telemetry_png(series: dict, run_id: int) -> bytes:
    """CPU %, RSS and, per GPU, utilisation and memory over the run's time."""
    fields = series.get("fields", [])
    points = series.get("points", [])
    columns = {name: [p[i] if i < len(p) else None for p in points] for i, name in enumerate(fields)}
    t = columns.get("t", list(range(len(points))))
    gpus = sorted({name.split("_", 1)[0] for name in fields if name.startswith("gpu")})
    fig = _figure(7, 2.4 * (1 + bool(gpus)))
    axes = fig.subplots(1 + bool(gpus), 1, squeeze=False)[:, 0]
    cpu = axes[0]
    cpu.plot(t, columns.get("cpu_pct", []), color="#1565c0", label="CPU %")
    cpu.set_ylabel("CPU %")
    rss = cpu.twinx()
    rss.plot(t, columns.get("rss_mb", []), color="#ef6c00", label="RSS MB")
    rss.set_ylabel("RSS MB")
    cpu.set_title(f"run {run_id}: telemetry ({len(points)} samples)", fontsize=10)
    if gpus:
        gpu_ax = axes[1]
        memory = gpu_ax.twinx()
        for gpu in gpus:
            gpu_ax.plot(t, columns.get(f"{gpu}_util", []), label=f"{gpu} util %")
            memory.plot(t, columns.get(f"{gpu}_mem_mb", []), linestyle="--", label=f"{gpu} memory MB")
        gpu_ax.set_ylabel("GPU util %")
        memory.set_ylabel("GPU memory MB")
        gpu_ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("seconds")
    return _png(fig)


def run_series(lab: Lab, run_id: int) -> dict:
    rows = list(lab.db.query("SELECT run_dir FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFound(f"no run with id {run_id}", hint="list runs with run_wait")
    return read_series(Path(rows[0]["run_dir"] or lab.path("runs", run_id)))


def default_run(view: CampaignView) -> int:
    """The run to show when none is named: one running now, else the latest."""
    if view.running:
        return view.running[-1]
    if view.runs:
        return view.runs[0].id
    raise InvalidInput(f"campaign {view.id} has no runs yet", hint="evaluate a trial first (trial_evaluate)")


class PlotOut(BaseModel):
    campaign: int
    kind: str
    run: int | None
    images: list[Image]


def plot(lab: Lab, campaign: int, kind: PlotKind = "progress", run: int | None = None) -> PlotOut:
    """A campaign as a picture (PNG, shown inline by hosts that display tool images):
    the progress curve (score per trial, each seed a dot, mean ± seed sd, best so far,
    baseline and the paper's number), the lineage tree coloured by label with audit
    verdicts and integrity levels, or a run's telemetry (CPU, RSS, per-GPU utilisation
    and memory over time). campaign_report(to=png) answers with it."""
    view = campaign_view.build(lab, campaign, LINEAGE_TRIALS if kind == "lineage" else MAX_VIEW_TRIALS)
    if kind == "telemetry":
        run_id = run if run is not None else default_run(view)
        owner = lab.db.execute("SELECT campaign_id FROM runs WHERE id = ?", [run_id]).fetchone()
        if owner is None or owner[0] != view.id:
            raise NotFound(f"campaign {view.id} has no run {run_id}",
                           hint=f"list its runs with run_wait campaign={view.id}")
        png = telemetry_png(run_series(lab, run_id), run_id)
        return PlotOut(campaign=view.id, kind=kind, run=run_id, images=[png_image(f"run {run_id} telemetry", png)])
    png = progress_png(view) if kind == "progress" else lineage_png(view)
    return PlotOut(campaign=view.id, kind=kind, run=None, images=[png_image(f"{view.name} {kind}", png)])
