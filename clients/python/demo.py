"""`sotalab demo`: the bundled tinynet campaign, end to end, through the MCP server.

A fixed, deterministic policy plays the eight roles in order; every step is a tool call
over stdio to a `sotalab serve` child, printed as it happens:

  resource    fetch the paper (PDF), read the reported baseline from its results table
  objective   create the campaign from examples/tinynet/campaign.json, reported value from the paper
  init        clone the code, build the venv, create and evaluate the baseline trial
  fix         retrieve before repair: only acts when the environment or the baseline failed
  ideator     queue three ideas (two honest changes, one planted cheat)
  scheduler   one trial per idea: patch the worktree, snapshot, evaluate (server-owned score)
  monitor     runs, GPUs and budget spend
  supervisor  full audits (the cheat is caught, the honest gains are valid with intervals),
              then finalize on the held-out split

It ends with the leaderboard and the lineage, and has the server write the campaign
report (campaign_report: markdown with plots, HTML, the winning patch) into the lab
home's reports/.

Running it again reuses what it built: the campaign named `tinynet-demo` is resumed,
every step first checks the ledger and skips work already done (the paper and the
environment are cache hits), and the report is rewritten. `--fresh` starts a new
campaign (`tinynet-demo-2`, `-3`, ...) that still reuses the cached paper and environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

from sotalab.tools import data_path
from sotalab.tools.trials import Label

from .session import LabSession, ToolCallError

CAMPAIGN_NAME = "tinynet-demo"
EXAMPLE = data_path("examples", "tinynet")
# Ideas in the order the scheduler runs them: (patch name in trials.json, idea type,
# risk, priority, parent). The cheat branches from the best honest trial, so its fake
# score tops the raw leaderboard until the supervisor's audit disqualifies it.
PLAN = (
    ("honest_normalise", "CODE", "low", 30, "baseline"),
    ("honest_learning_rate", "PARAM", "low", 20, "honest_normalise"),
    ("cheat_monkeypatch_metric", "CODE", "high", 10, "honest_learning_rate"),
)
FAILURE_LABELS = set(get_args(Label)) - {"keep", "discard"}
GIT_IDENTITY = ["-c", "user.name=sotalab demo", "-c", "user.email=demo@sotalab.invalid",
                "-c", "commit.gpgsign=false"]


class DemoFailed(Exception):
    """The demo cannot go on; the message says why and what to do."""


def example_trials() -> dict[str, dict]:
    spec = json.loads((EXAMPLE / "trials.json").read_text())
    return {t["name"]: t for t in spec["trials"]}


def stage_example(home: Path) -> tuple[Path, Path]:
    """Lay the bundled example out in the lab home: the paper PDF, and the code as a git
    repository standing in for the paper's code link (the demo runs offline)."""
    staged = home / "examples" / "tinynet"
    staged.mkdir(parents=True, exist_ok=True)
    pdf = staged / "tinynet.pdf"
    if not pdf.exists():
        shutil.copyfile(EXAMPLE / "paper" / "tinynet.pdf", pdf)
    mirror = staged / "tinynet.git"
    if not (mirror / ".git").exists():
        tmp = staged / "tinynet.git.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(EXAMPLE / "repo", tmp, ignore=shutil.ignore_patterns("__pycache__", "metrics.json"))
        env = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
               "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(staged)}
        for argv in (["init", "--quiet", "--initial-branch=main"], ["add", "--all"],
                     ["commit", "--quiet", "--no-verify", "-m", "tinynet: code release for the paper"]):
            subprocess.run(["git", *GIT_IDENTITY, *argv], cwd=tmp, check=True, env=env, capture_output=True)
        tmp.rename(mirror)
    return pdf, mirror


def cheat_source(text: str, patch: str) -> str:
    """The planted cheat's added lines, inserted after train.py's numpy import: the same
    change as its patch, but placeable on top of any parent's train.py."""
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    anchor = "import numpy as np\n"
    if anchor not in text:
        raise DemoFailed("train.py has no 'import numpy as np' line to plant the cheat after")
    return text.replace(anchor, anchor + "\n".join(added) + "\n", 1)


def fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Demo:
    def __init__(self, lab: LabSession, fresh: bool):
        self.lab = lab
        self.fresh = fresh
        self.trials = example_trials()
        self.campaign: dict = {}
        self.ids: dict[str, int] = {}  # plan name (or "baseline") -> trial id
        self.final: dict | None = None
        self.paper: dict = {}

    def role(self, n: int, name: str, what: str) -> None:
        self.lab.say(f"\n[{n}/8 {name}] {what}")

    def note(self, text: str) -> None:
        self.lab.say(f"    {text}")

    async def call(self, tool: str, **arguments) -> dict:
        return await self.lab.call(tool, **arguments)

    # ---------------------------------------------------------------- roles

    async def resource(self, pdf: Path) -> float:
        self.role(1, "resource", "fetch the paper and read its reported baseline")
        self.paper = await self.call("paper_fetch", source=str(pdf))
        links = [link["url"] for link in self.paper["code_links"]]
        self.note(f"paper {self.paper['id']}: \"{self.paper['title']}\", {self.paper['page_count']} page(s), "
                  f"{self.paper['tables']} table(s){' (cached)' if self.paper['cached'] else ''}")
        self.note(f"code link: {links[0] if links else 'none found'}")
        results = await self.call("paper_results", paper=self.paper["id"], metric="accuracy", method="TinyNet")
        if not results["cells"]:
            raise DemoFailed("the paper's tables report no accuracy for TinyNet")
        cell = results["cells"][0]
        value = cell["value"] / 100 if cell["unit"] == "%" or cell["value"] > 1 else cell["value"]
        self.note(f"reported: {cell['row_header']} / {cell['column_header']} = {cell['text']} "
                  f"({cell['caption']}, page {cell['page']}) -> accuracy {value:.3f}")
        return value

    async def objective(self, reported: float) -> None:
        self.role(2, "objective", "create the campaign with the paper's number as the target to reproduce")
        definition = json.loads((EXAMPLE / "campaign.json").read_text())
        existing, cursor = {}, None
        while True:  # every page: a lab with many campaigns must still find this one
            page = await self.call("campaign_get", limit=100, cursor=cursor, quiet=True)
            existing.update({c["name"]: c for c in page["campaigns"]})
            if not (cursor := page["next_cursor"]):
                break
        name = CAMPAIGN_NAME
        if self.fresh and name in existing:
            n = 2
            while f"{CAMPAIGN_NAME}-{n}" in existing:
                n += 1
            name = f"{CAMPAIGN_NAME}-{n}"
        if name in existing:
            self.campaign = existing[name]
            self.note(f"resuming campaign {self.campaign['id']} `{name}` (run with --fresh for a new one)")
        else:
            definition.update(name=name, repo_url=self.paper["code_links"][0]["url"] if self.paper["code_links"] else None)
            definition["objective"]["reported"] = round(reported, 4)
            self.campaign = await self.call("campaign_create", **definition)
            self.note(f"campaign {self.campaign['id']} `{name}`: max accuracy, reported {reported:.3f}, "
                      f"tolerance {definition['objective']['reproduce_tolerance']}, "
                      f"protected {definition['protected_paths']}, held out {definition['held_out_paths']}")
        await self.call("paper_fetch", source=self.paper["source"], campaign=self.campaign["id"], quiet=True)

    async def init(self, mirror: Path) -> None:
        self.role(3, "init", "clone the code, build the environment, reproduce the baseline")
        cid = self.campaign["id"]
        if self.campaign["repo_commit"] is None:
            self.note(f"code link {self.campaign['repo_url']} -> bundled offline mirror {mirror}")
            repo = await self.call("repo_clone", campaign=cid, url=str(mirror))
            self.note(f"pinned {repo['commit'][:12]}; {repo['protected_files']} protected files hashed; "
                      f"{repo['held_out_count']} held-out file(s) moved out of every trial")
        else:
            self.note(f"code already cloned at {self.campaign['repo_commit'][:12]}")
        built = await self.call("env_build", campaign=cid, backend="venv")
        env = built["env"]
        self.note(f"environment {env['id']}: {env['status']}{' (reused)' if built['reused'] else ''}, "
                  f"{len(env['spec']['requirements'])} requirement(s)")
        if env["status"] != "ready":
            await self.fix(env_id=env["id"])
        campaign = await self.call("campaign_get", campaign=cid, quiet=True)
        baseline_id = campaign["baseline_trial_id"]
        if baseline_id is None:
            baseline_id = (await self.call("trial_create", campaign=cid, kind="baseline",
                                           hypothesis="the paper's code, unchanged"))["id"]
        self.ids["baseline"] = baseline_id
        baseline = await self.evaluate(baseline_id)
        if baseline["score"] is None:  # the fix role diagnoses it next
            self.note(f"baseline trial {baseline_id}: not scored, label {baseline['label']}")
            return
        reported = campaign["objective"]["reported"]
        gap = baseline["score"] - reported
        ok = abs(gap) <= campaign["objective"]["reproduce_tolerance"]
        self.note(f"baseline trial {baseline_id}: accuracy {fmt(baseline['score'])} vs reported {reported:.3f} "
                  f"(gap {gap:+.4f}): {'reproduced' if ok else 'NOT reproduced'} within "
                  f"±{campaign['objective']['reproduce_tolerance']}")

    async def fix(self, env_id: str | None = None) -> None:
        """Retrieve before repair: diagnose a failed build or baseline run (the diagnosis
        brings fixes that worked before for the same signature). The demo stops there:
        a fixed policy cannot judge a repair, so it reports what the fix role would try."""
        self.role(4, "fix", "retrieve before repair")
        if env_id is None:
            baseline = await self.call("trial_get", trial=self.ids["baseline"], quiet=True)
            if baseline["label"] not in FAILURE_LABELS:
                self.note(f"environment ready and baseline evaluated cleanly (label {baseline['label']}): "
                          "nothing to repair")
                return
            runs = (await self.call("run_wait", trial=baseline["id"], limit=1))["runs"]
            if not runs:
                raise DemoFailed(f"the baseline is labelled {baseline['label']} and has no run to diagnose")
            diagnosis = await self.call("env_diagnose", run=runs[0]["id"])
        else:
            diagnosis = await self.call("env_diagnose", env=env_id)
        for finding in diagnosis["findings"]:
            known = [k.get("fix") for k in finding.get("known_fixes", [])]
            self.note(f"{finding['signature']}: {finding['detail']}; fixes: {finding['fixes'] + known}")
        raise DemoFailed(f"cannot go on: {diagnosis['summary']} (see the diagnosis above; "
                         f"the server log is in the lab home's reports/)")

    async def ideator(self) -> dict[str, int]:
        self.role(5, "ideator", "queue the hypotheses")
        cid = self.campaign["id"]
        ideas = {i["title"]: i for i in (await self.call("idea_list", campaign=cid, limit=100))["ideas"]}
        for name, kind, risk, priority, _ in PLAN:
            hypothesis = self.trials[name]["hypothesis"]
            if hypothesis not in ideas:
                ideas[hypothesis] = await self.call("idea_set", campaign=cid, title=hypothesis[:200], type=kind,
                                                    risk=risk, priority=priority,
                                                    description=f"example trial {name} ({self.trials[name]['patch']})")
            self.note(f"idea {ideas[hypothesis]['id']} [{kind}, {risk} risk]: {hypothesis}")
        return {name: ideas[self.trials[name]["hypothesis"]]["id"] for name, *_ in PLAN}

    async def scheduler(self, idea_ids: dict[str, int]) -> None:
        self.role(6, "scheduler", "one change per trial; the server scores it")
        cid = self.campaign["id"]
        for name, _, _, _, parent in PLAN:
            spec = self.trials[name]
            existing = (await self.call("trial_get", campaign=cid, limit=100, quiet=True))["trials"]
            found = [t for t in existing if t["hypothesis"] == spec["hypothesis"][:200]]
            if found:
                trial = await self.call("trial_get", trial=found[0]["id"], quiet=True)
            else:
                trial = await self.call("trial_create", campaign=cid, kind=spec["kind"], hypothesis=spec["hypothesis"],
                                        parent=self.ids[parent], idea=idea_ids[name])
            self.ids[name] = trial["id"]
            self.note(f"trial {trial['id']} ({name}, parent {parent} = trial {self.ids[parent]})")
            if trial["commit_sha"] is None or not trial["diff_stat"]:
                patch = (EXAMPLE / spec["patch"]).read_text()
                if name.startswith("cheat_"):
                    current = (await self.call("workspace_read", trial=trial["id"], path="train.py"))["content"]
                    await self.call("workspace_write", trial=trial["id"], path="train.py",
                                    content=cheat_source(current, patch))
                else:
                    await self.call("workspace_write", trial=trial["id"], patch=patch)
                snap = await self.call("trial_snapshot", trial=trial["id"])
                stat = snap.get("diff_stat") or {}
                self.note(f"snapshot {snap.get('commit', '')[:12]}: +{stat.get('insertions', 0)} "
                          f"-{stat.get('deletions', 0)} in {', '.join(stat.get('files', []))}")
            scored = await self.evaluate(trial["id"])
            await self.call("idea_set", idea=idea_ids[name], status="done", quiet=True)
            self.note(f"-> accuracy {fmt(scored['score'])} (Δparent {fmt(scored['delta_parent'], 4)}, "
                      f"Δbaseline {fmt(scored['delta_baseline'], 4)}), label {scored['label']}")

    async def monitor(self) -> None:
        self.role(7, "monitor", "runs, GPUs and budgets")
        cid = self.campaign["id"]
        # The newest few: a resumed campaign's audits have added dozens, too many for one result.
        runs = await self.call("run_wait", campaign=cid, limit=8)
        self.note(f"{runs['total']} supervised run(s) for this campaign, the newest {len(runs['runs'])}:")
        for run in runs["runs"]:
            t = run.get("telemetry") or {}
            self.note(f"  run {run['id']} trial {run['trial_id']} seed {run['seed']}: {run['status']} "
                      f"({run['reason']}), {run.get('sandbox') or run['executor']}, wall {t.get('wall_s', '-')} s, "
                      f"peak RSS {t.get('peak_rss_mb', '-')} MB")
        gpus = (await self.call("lab_status", quiet=True))["compute"]
        self.note(f"GPUs: {len(gpus['gpus'])}" + (f" ({gpus['detail']})" if gpus.get("detail") else "")
                  + f"; CPU slots {gpus.get('cpu_slots_busy', 0)}/{gpus.get('cpu_slots', '-')} busy")
        campaign = await self.call("campaign_get", campaign=cid, quiet=True)
        budget = campaign["budgets"]
        self.note(f"trials {campaign['trial_count']}/{budget.get('max_trials') or '∞'}; spent {campaign['spent']}")

    async def supervisor(self) -> None:
        self.role(8, "supervisor", "audit every gain, disqualify cheats, finalize on the held-out split")
        for name, *_ in PLAN:
            trial_id = self.ids[name]
            done = (await self.call("audit_get", trial=trial_id, depth="full", quiet=True))["audits"]
            if done:
                audit = await self.call("audit_get", audit=done[0]["id"])
            else:
                audit = await self.call("audit_trial", trial=trial_id, depth="full")
            self.note(f"trial {trial_id} ({name}): {audit['verdict'].upper()}")
            for check in audit["checks"]:
                if check["verdict"] != "pass" or check["name"] == "significance":
                    rules = sorted({e["rule"] for e in check.get("evidence", []) if e.get("rule")})
                    self.note(f"    {check['name']}: {check['verdict']} — {check['summary'][:160]}"
                              + (f" [{', '.join(rules)}]" if rules else ""))
        cid = self.campaign["id"]
        campaign = await self.call("campaign_get", campaign=cid, quiet=True)
        if campaign["spent"].get("finalize_calls"):
            # The held-out split is not for probing: read the recorded result instead.
            hits = (await self.call("note_search", query="finalization", campaign=cid, kind="decision"))["hits"]
            if not hits:
                raise DemoFailed(f"campaign {cid} was finalized but its result note is missing; run with --fresh")
            self.final = json.loads(hits[0]["note"]["body"])
            self.note(f"already finalized (finalization {self.final['id']}), not touching the held-out split again")
        else:
            self.final = await self.call("campaign_finalize", campaign=cid)
            await self.call("note_add", campaign=cid, trial=self.final["best"]["trial"], kind="decision",
                            title=f"finalization {self.final['id']}: held-out result", tags=["finalization"],
                            body=json.dumps(self.final))
            await self.call("campaign_update", campaign=cid, status="done")
        f = self.final
        interval = f"[{f['interval'][0]:+.4f}, {f['interval'][1]:+.4f}]" if f.get("interval") else "n/a"
        self.note(f"held-out {f['metric']}: trial {f['best']['trial']} {f['best']['mean']:.4f} vs baseline "
                  f"{f['baseline']['mean']:.4f} over {len(f['best']['scores'])} seeds: gain {f['gain']:+.4f}, "
                  f"95% interval {interval}, p={f['p_value']:.2g}")

    # ---------------------------------------------------------------- results

    async def evaluate(self, trial_id: int) -> dict:
        trial = await self.call("trial_get", trial=trial_id, quiet=True)
        if trial["score"] is None and trial["label"] is None:
            await self.call("trial_evaluate", trial=trial_id)
            trial = await self.call("trial_get", trial=trial_id, quiet=True)
        return trial

    async def results(self) -> None:
        board = await self.call("trial_get", campaign=self.campaign["id"], ranked=True, limit=10)
        claims = await self.call("trial_get", campaign=self.campaign["id"], ranked=True, limit=10,
                                 claims_only=True)
        lineage = await self.call("trial_get", trial=self.ids["baseline"], lineage=True)
        self.lab.say("\nLeaderboard (evaluator-owned validation accuracy):")
        for e in board["entries"]:
            t = e["trial"]
            self.lab.say(f"  {e['rank']:>2}. trial {t['id']:<3} {t['kind']:<8} {fmt(t['score'])} ± {fmt(e['score_std'])} "
                         f"Δbaseline {fmt(e['delta_baseline'])}  {t['label'] or '':<12} {t['hypothesis'][:60]}")
        self.lab.say("Claims (valid full audit): " + (", ".join(
            f"trial {e['trial']['id']} {fmt(e['trial']['score'])}" for e in claims["entries"]) or "none"))
        self.lab.say("\nLineage:")
        for line in lineage_lines(lineage["tree"]):
            self.lab.say("  " + line)


def lineage_lines(node: dict, depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}{'└─ ' if depth else ''}trial {node['id']} [{node['kind']}] "
             f"{fmt(node['score'])} {node['label'] or ''} {node['hypothesis'][:50]}"]
    for child in node["children"]:
        lines += lineage_lines(child, depth + 1)
    return lines


async def run(home: Path | None, fresh: bool, out) -> int:
    started = time.perf_counter()
    from sotalab.tools.home import resolve_home

    server_log = resolve_home(home) / "reports" / "demo-server.log"
    async with LabSession(home=home, out=out, server_log=server_log) as lab:
        status = await lab.call("lab_status", quiet=True)
        lab_home = Path(status["home"])
        lab.say(f"sotalab demo — lab home {lab_home}, {len(lab.tools)} tools over MCP stdio "
                f"(server log: {server_log})")
        pdf, mirror = stage_example(lab_home)
        demo = Demo(lab, fresh)
        reported = await demo.resource(pdf)
        await demo.objective(reported)
        await demo.init(mirror)
        await demo.fix()
        idea_ids = await demo.ideator()
        await demo.scheduler(idea_ids)
        await demo.monitor()
        await demo.supervisor()
        await demo.results()
        report = await lab.call("campaign_report", campaign=demo.campaign["id"], quiet=True)
        lab.say(f"\nReport: {report['markdown']} (and {Path(report['html']).name}, the plots and "
                f"{'winning.patch' if report['winning_trial'] else 'no winning patch'} beside it)")
        lab.say(f"Done in {time.perf_counter() - started:.1f}s, {lab.calls} tool calls.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sotalab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None,
                        help="lab home (default: $SOTALAB_HOME, else the platform data dir)")
    parser.add_argument("--fresh", action="store_true",
                        help="start a new campaign instead of resuming `tinynet-demo`")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.home, args.fresh, sys.stdout))
    except (DemoFailed, ToolCallError) as exc:
        print(f"sotalab demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
