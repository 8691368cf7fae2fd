"""`campaign_report`: what a campaign found, written into the lab home as markdown (with
its plots as PNG files beside it) and as one self-contained HTML page.

The report is built once as a list of blocks (heading, paragraph, table, code, image)
and rendered twice, so the markdown and the HTML always say the same thing. Hypotheses,
diffs, audit evidence and paper cells are untrusted text: the markdown escapes them
(table cells, fences longer than any run of backticks inside), the HTML escapes
everything and forbids scripts with its Content-Security-Policy. With to=png the tool
writes nothing and returns one picture from tools/plots.py instead.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from . import campaign_view, plots, workspaces
from .mlflow_export import ExportOut, export
from .audit.tools import load_audit
from .campaign_view import CampaignView, TrialView
from .errors import InvalidInput
from .home import Lab
from .plots import PlotKind, PlotOut
from .registry import tool

MAX_PATCH_CHARS = 200_000
MAX_EVIDENCE_PER_CHECK = 10


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Code:
    text: str
    language: str = ""


@dataclass
class Picture:
    file: str
    alt: str
    png: bytes = field(repr=False, default=b"")


Block = Heading | Para | Bullets | Table | Code | Picture


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def interval_text(interval: list[float] | None) -> str:
    return "n/a" if not interval else f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


# ------------------------------------------------------------------ the content

def _objective(view: CampaignView) -> list[Block]:
    b = view.baseline
    source = b.reported_source
    where = (f"paper {source.paper}, table {source.table} ({source.caption or 'no caption'}), page {source.page}: "
             f"row \u201c{source.row_header}\u201d, column \u201c{source.column_header}\u201d, "
             f"cell \u201c{source.text}\u201d"
             if source else "not traced to a paper table (no paper linked to the campaign, or no cell matches)")
    return [
        Heading("Objective"),
        Bullets([f"{view.direction} {view.metric}; target {fmt(view.target)}; minimum effect {view.min_effect:g}",
                 f"reported baseline {fmt(b.reported)}; from {where}",
                 f"code {view.repo_url or '-'} @ {view.repo_commit or '-'}"]),
        Heading("Reproduction"),
        Para(f"Baseline trial {b.trial}: {view.metric} {fmt(b.reproduced)} reproduced by the server versus "
             f"{fmt(b.reported)} reported; gap {signed(b.gap)} "
             + ("(not scored yet)." if b.within_tolerance is None else
                f"({'within' if b.within_tolerance else 'outside'} the tolerance of \u00b1{b.tolerance:g}).")),
    ]


def _seed_text(trial: TrialView) -> str:
    return ", ".join(f"{seed}: {score:.4f}" for seed, score in trial.seed_scores.items()) or "-"


def _diff_text(trial: TrialView) -> str:
    stat = trial.diff_stat or {}
    if not stat:
        return "-"
    files = ", ".join(stat.get("files", [])) or "no files"
    return f"+{stat.get('insertions', 0)} -{stat.get('deletions', 0)} in {files}"


def _trials(view: CampaignView) -> list[Block]:
    rows = []
    for t in view.trials:
        audit = t.audit
        verdict = "-" if audit is None else f"{audit.verdict} ({audit.depth} audit {audit.id})" + (
            f"; failed: {', '.join(audit.failed)}" if audit.failed else "")
        rows.append([str(t.id), str(t.parent_id or "-"), t.kind, t.hypothesis or "-", _diff_text(t), _seed_text(t),
                     f"{fmt(t.score)} \u00b1 {fmt(t.score_std)}", t.label or "-", verdict, t.integrity])
    blocks: list[Block] = [Heading("Trials"), Table(
        ["trial", "parent", "kind", "hypothesis", "diff", "per-seed scores", "mean \u00b1 sd", "label", "audit",
         "integrity"], rows)]
    if view.trials_omitted:
        blocks.append(Para(f"{view.trials_omitted} older trial(s) are not listed."))
    return blocks


def _audits(lab: Lab, view: CampaignView) -> list[Block]:
    blocks: list[Block] = [Heading("Audits")]
    audited = [t for t in view.trials if t.audit]
    if not audited:
        return [*blocks, Para("No trial has been audited.")]
    for t in audited:
        audit = load_audit(lab, t.audit.id)
        blocks += [Heading(f"Trial {t.id}: {audit.verdict} ({audit.depth} audit {audit.id}, integrity "
                           f"{t.audit.integrity})", 3), Para(audit.reason)]
        items = []
        for check in audit.checks:
            items.append(f"{check.name}: {check.verdict} \u2014 {check.summary}")
            if check.verdict in ("fail", "warn"):
                items += [f"  finding {e.rule or '-'} at {e.file or '-'}:{e.line or '-'}: {e.detail or e.value}"
                          for e in check.evidence[:MAX_EVIDENCE_PER_CHECK]]
        blocks.append(Bullets(items))
    return blocks


def _results(view: CampaignView) -> list[Block]:
    blocks: list[Block] = [Heading("Claim and held-out result")]
    claim = view.best_claim
    if claim is None:
        blocks.append(Para("No claim: no trial has a valid full audit of its current commit."))
    else:
        p_value = "-" if claim.p_value is None else f"{claim.p_value:.3g}"
        blocks.append(Para(f"Best claim: trial {claim.trial}, validation {view.metric} {fmt(claim.score)}, gain "
                           f"{signed(claim.gain)} over the baseline across {claim.seeds or '-'} seeds, 95% interval "
                           f"{interval_text(claim.interval)}, p = {p_value} (full audit {claim.audit})."))
    final = view.finalization
    if final:
        best, base = final.get("best", {}), final.get("baseline", {})
        blocks += [
            Para(f"Held-out split (finalization {final.get('id')}, audit {final.get('audit')}): trial "
                 f"{best.get('trial')} {fmt(best.get('mean'))} versus baseline {fmt(base.get('mean'))}; gain "
                 f"{signed(final.get('gain'))}, 95% interval {interval_text(final.get('interval'))}, integrity "
                 f"{final.get('integrity') or campaign_view.UNKNOWN_INTEGRITY}."),
            Table(["trial", f"held-out {view.metric} per seed", "mean"],
                  [[f"{r.get('trial')} ({name})", ", ".join(f"{k}: {v:.4f}" for k, v in r.get("scores", {}).items()),
                    fmt(r.get("mean"))] for name, r in (("best", best), ("baseline", base))])]
        if final.get("anomaly"):
            blocks.append(Para(f"Anomaly: the held-out evaluation does not confirm trial {best.get('trial')} "
                               f"({(final.get('agreement') or {}).get('summary') or 'see the finalization'}); "
                               "it is not reported as an improvement."))
    else:
        blocks.append(Para("Not finalized: the held-out split has not been evaluated (campaign_finalize)."))
    levels = sorted({t.integrity for t in view.trials if t.score is not None})
    blocks.append(Para(f"Integrity level of the scores: {', '.join(levels) or campaign_view.UNKNOWN_INTEGRITY}."))
    return blocks


def winning_trial(view: CampaignView) -> int | None:
    """The finalized trial, else the best claim; none when the held-out evaluation of
    that trial was an anomaly (it disagreed with validation, or failed there)."""
    final = view.finalization
    if final and final.get("best", {}).get("trial"):
        return None if final.get("anomaly") else int(final["best"]["trial"])
    return view.best_claim.trial if view.best_claim else None


def _patch(lab: Lab, view: CampaignView, folder: Path) -> list[Block]:
    winner = winning_trial(view)
    if winner is None:
        return []
    _, diff = workspaces.committed_diff(lab, winner, against="baseline")
    (folder / "winning.patch").write_text(diff)
    shown = diff if len(diff) <= MAX_PATCH_CHARS else diff[:MAX_PATCH_CHARS] + "\n[... cut; winning.patch has it all]\n"
    return [Heading("Winning patch"),
            Para(f"Trial {winner} against the baseline (its committed snapshot), saved as winning.patch."),
            Code(shown, "diff")]


def _plots(lab: Lab, view: CampaignView) -> list[Block]:
    blocks: list[Block] = [Heading("Plots"),
                           Picture("progress.png", "score per trial", plots.progress_png(view)),
                           Picture("lineage.png", "lineage",
                                   plots.lineage_png(campaign_view.build(lab, view.id, plots.LINEAGE_TRIALS)))]
    if view.runs:
        run = plots.default_run(view)
        blocks.append(Picture("telemetry.png", f"run {run} telemetry",
                              plots.telemetry_png(plots.run_series(lab, run), run)))
    return blocks


def build(lab: Lab, view: CampaignView, folder: Path) -> list[Block]:
    return [Heading(f"sotalab report: campaign {view.id} \u201c{view.name}\u201d", 1), Para(view.description or ""),
            *_objective(view), *_trials(view), *_audits(lab, view), *_results(view), *_patch(lab, view, folder),
            *_plots(lab, view)]


# ------------------------------------------------------------------ markdown

_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_LIST_NUMBER = re.compile(r"^(\d+)([.)])(?=\s|$)")
_MD_LINE_START = re.compile(r"^([#>+=-])")


def md_text(text: str) -> str:
    """Untrusted text as one line of literal markdown: no HTML, code, links, emphasis,
    table cells or block structure of its own."""
    flat = " ".join(text.split())
    escaped = _MD_INLINE.sub(r"\\\1", html.escape(flat, quote=False))
    return _MD_LINE_START.sub(r"\\\1", _MD_LIST_NUMBER.sub(r"\1\\\2", escaped))


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + md_text(block.text), ""]
        elif isinstance(block, Para):
            out += [md_text(block.text), ""] if block.text else []
        elif isinstance(block, Bullets):
            out += [("  - " if item.startswith("  ") else "- ") + md_text(item) for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(md_text(h) for h in block.header) + " |")
            out.append("|" + " --- |" * len(block.header))
            out += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Code):
            fence = _fence(block.text)
            out += [fence + block.language, block.text.rstrip("\n"), fence, ""]
        elif isinstance(block, Picture):
            out += [f"![{md_text(block.alt)}]({block.file})", ""]
    return "\n".join(out)


# ------------------------------------------------------------------ HTML

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
STYLE = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}img{max-width:100%}"""


def to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    out = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
           f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
           f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{e(block.text)}</p>" if block.text else "")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(item.strip())}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in block.header)
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{e(block.text)}</code></pre>")
        elif isinstance(block, Picture):
            data = base64.b64encode(block.png).decode()
            out.append(f"<p><img alt='{e(block.alt)}' src='data:image/png;base64,{data}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


# ------------------------------------------------------------------ the tool

class ReportIn(BaseModel):
    campaign: int
    to: Literal["files", "mlflow", "png"] = "files"
    plot: PlotKind = Field("progress", description="to=png")
    run: int | None = Field(None, description="plot=telemetry")


class ReportOut(BaseModel):
    campaign: int
    folder: str = Field(description="the report's folder in the lab home")
    markdown: str = Field(description="report.md (plots beside it as PNG files)")
    html: str = Field(description="report.html, self-contained (plots inline)")
    files: list[str] = Field(description="every file written, relative to the folder")
    trials: int
    winning_trial: int | None
    finalized: bool


def report_folder(lab: Lab, view: CampaignView) -> Path:
    return lab.path("reports", f"campaign-{view.id}")


@tool(idempotent=True)
def campaign_report(lab: Lab, args: ReportIn) -> ReportOut | ExportOut | PlotOut:
    """Write the campaign's report (report.md/html) or MLflow runs, or show a plot (png).

    Write the campaign's report into the lab home (reports/campaign-<id>/): the objective
    and the paper table its reported number came from, the reproduction and its gap,
    every trial with hypothesis, diff stat, per-seed scores, label, audit verdict and
    integrity level, the audits' findings, the best claim and the held-out result with
    their intervals, the winning patch, and the plots - as report.md (with PNGs) and a
    self-contained report.html. Writing it again replaces it.

    `to=mlflow` writes the campaign's trials to the lab's own MLflow store instead (sqlite
    in the lab home, open it with `mlflow ui --backend-store-uri <tracking_uri>`): one
    run per trial with params, per-seed and summary metrics, telemetry as metric steps,
    label/audit/integrity tags, diff and report artifacts, and the lineage as parent
    runs. Exporting again updates the same runs. Another tracking server: `sotalab
    export mlflow --campaign N --tracking-uri URI`. Needs the extra sotalab[mlflow].

    `to=png` writes nothing and returns one picture (shown inline by hosts that display
    tool images): plot=progress the score per trial (each seed a dot, mean ± seed sd,
    best so far, baseline and the paper's number), plot=lineage the lineage tree
    coloured by label with audit verdicts and integrity levels, plot=telemetry a run's
    CPU, RSS and per-GPU utilisation and memory over time (run: default the running or
    latest run)."""
    if args.to != "png" and (args.plot != "progress" or args.run is not None):
        raise InvalidInput(f"plot and run choose a picture, which only to=png returns (to={args.to})",
                           hint=f"call campaign_report with to=png, or leave plot and run out for to={args.to}")
    if args.run is not None and args.plot != "telemetry":
        raise InvalidInput(f"run names a run's telemetry; plot={args.plot} draws the whole campaign",
                           hint="pass plot=telemetry with run, or leave run out")
    if args.to == "png":
        return plots.plot(lab, args.campaign, args.plot, args.run)
    if args.to == "mlflow":
        return export(lab, args.campaign)
    view = campaign_view.build(lab, args.campaign)
    folder = report_folder(lab, view)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "winning.patch").unlink(missing_ok=True)  # a rewrite must not keep a former winner's patch
    blocks = build(lab, view, folder)
    files = []
    for block in blocks:
        if isinstance(block, Picture):
            (folder / block.file).write_bytes(block.png)
            files.append(block.file)
    (folder / "report.md").write_text(to_markdown(blocks))
    (folder / "report.html").write_text(to_html(blocks, f"sotalab report: {view.name}"))
    files += ["report.md", "report.html"] + (["winning.patch"] if (folder / "winning.patch").exists() else [])
    winner = winning_trial(view)
    return ReportOut(campaign=view.id, folder=str(folder), markdown=str(folder / "report.md"),
                     html=str(folder / "report.html"), files=sorted(files), trials=len(view.trials),
                     winning_trial=winner, finalized=view.finalization is not None)
