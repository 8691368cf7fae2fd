"""Audit benchmark (issue: audit), printed as tables for benchmarks/README.md.

    uv run python benchmarks/bench_audit.py [--rounds N]

1. Detection: every trial of examples/tinynet/trials.json (honest improvements and
   planted cheats) is evaluated by the server and audited at depth full. Caught =
   the expected verdict with the targeted check failing; an honest trial must be valid
   with no finding at all.
2. Full-audit wall time with the trial's, baseline's and parent's evaluations submitted
   together (the product) against one after the other (the reference), interleaved.
   Quick-audit wall time on a trial whose diff against the baseline is 2,000 lines (real
   code: standard-library modules vendored into the repository), against the quick audit
   of a one-line trial in the same run (the reference). Target: under 2 s.
3. The diff rules alone on real code that is not training code (numpy and scipy sources
   as one added diff): lines per second, and findings per 1,000 lines.
4. Hostile cheats (issue #10, tests/cheats/): every cheat of the catalogue played through
   the MCP server as an agent would, at the example's isolated level (defeated = refused,
   score not inflated, no claim, or caught, as the catalogue says) and at the in_process
   level (caught with the expected finding); the honest changes at full depth (valid, no
   finding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from cheats.agent import Agent  # noqa: E402
from cheats.catalogue import CAUGHT_IN_PROCESS as CAUGHT  # noqa: E402
from cheats.catalogue import CHEATS, HONEST  # noqa: E402
from cheats.play import EXAMPLE, Lab, defeated  # noqa: E402
from tinynet_lab import MANIFEST, TinynetCampaign  # noqa: E402

from sotalab.tools.home import Lab as LabHome  # noqa: E402

STDLIB_MODULES = ("statistics", "textwrap", "fractions", "heapq")
BIG_DIFF_LINES = 2000


def detection(camp: TinynetCampaign) -> list[str]:
    rows = ["| trial | expected | verdict | failing checks (rules) | result |", "|---|---|---|---|---|"]
    caught = honest_ok = 0
    for entry in MANIFEST:
        audit = camp.call("audit_trial", trial=camp.trial(entry["name"]), depth="full")
        failing = [c for c in audit["checks"] if c["verdict"] == "fail"]
        findings = [e for c in audit["checks"] for e in c["evidence"]]
        described = ", ".join(f"{c['name']} ({', '.join(sorted({e['rule'] for e in c['evidence'] if e['rule']}))})"
                              for c in failing) or "none"
        if entry["expect"] == "valid":
            ok = audit["verdict"] == "valid" and not findings
            honest_ok += ok
            result = "valid, no finding" if ok else f"FALSE FINDING ({len(findings)})"
        else:
            ok = audit["verdict"] == entry["expect"] and any(c["name"] == entry["check"] for c in failing)
            caught += ok
            result = "caught" if ok else "MISSED"
        rows.append(f"| {entry['name']} | {entry['expect']}"
                    f"{' (' + entry['check'] + ')' if entry.get('check') else ''} | {audit['verdict']} "
                    f"| {described} | {result} |")
    cheats = sum(1 for e in MANIFEST if e["expect"] != "valid")
    honest = len(MANIFEST) - cheats
    rows.append(f"\ncheats caught: {caught}/{cheats}; honest trials valid with no finding: {honest_ok}/{honest}")
    return rows


def vendored_code(lines: int) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((stdlib / f"{m}.py").read_text() for m in STDLIB_MODULES)
    return "\n".join(text.splitlines()[:lines]) + "\n"


def timed_quick_audits(camp: TinynetCampaign, trial: int, rounds: int) -> tuple[float, dict]:
    times, audit = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        audit = camp.call("audit_trial", trial=trial, depth="quick")
        times.append(time.perf_counter() - started)
    return statistics.median(times), audit


def quick_audit_time(camp: TinynetCampaign, rounds: int) -> list[str]:
    small = camp.trial("honest_learning_rate")
    big = camp.call("trial_create", campaign=camp.id, kind="code", hypothesis="vendor helper modules")["id"]
    camp.call("workspace_write", trial=big, path="lib/vendored.py", content=vendored_code(BIG_DIFF_LINES))
    camp.call("trial_evaluate", trial=big)
    diff_lines = camp.call("trial_get", trial=big)["diff_stat"]["insertions"]
    timed_quick_audits(camp, small, 1)  # warm-up: imports and caches paid once, not by either side
    reference, _ = timed_quick_audits(camp, small, rounds)
    measured, audit = timed_quick_audits(camp, big, rounds)
    findings = sum(len(c["evidence"]) for c in audit["checks"] if c["name"] == "diff_rules")
    return ["| trial | added lines | quick audit (median of %d) | vs one-line trial | target |" % rounds,
            "|---|---|---|---|---|",
            f"| honest_learning_rate (reference) | 1 | {reference:.3f} s | 1x | |",
            f"| vendored stdlib code | {diff_lines} | {measured:.3f} s | {measured / reference:.2f}x "
            f"| < 2 s: {'pass' if measured < 2 else 'FAIL'} |",
            f"\ndiff-rule findings on the 2,000-line honest diff: {findings}; verdict {audit['verdict']}"]


def rule_throughput() -> list[str]:
    import numpy
    import scipy

    from sotalab.tools.audit import diff_rules
    from test_audit_diff_rules import CTX, added_file_diff

    files = sorted(p for root in (Path(numpy.__file__).parent, Path(scipy.__file__).parent)
                   for p in root.rglob("*.py") if "tests" not in p.parts and "testing" not in p.parts)[:400]
    diff = "".join(added_file_diff(str(p.name), p.read_text(errors="replace")) for p in files)
    lines = diff.count("\n+")
    started = time.perf_counter()
    findings = diff_rules.scan(diff, CTX)
    elapsed = time.perf_counter() - started
    by_rule: dict[str, int] = {}
    for f in findings:
        by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    return [f"{len(files)} numpy/scipy files, {lines:,} added lines: {elapsed:.2f} s "
            f"({lines / elapsed:,.0f} lines/s); {len(findings)} findings "
            f"({1000 * len(findings) / lines:.2f} per 1,000 lines): "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items()))]


def hostile(root: Path) -> list[str]:
    agent = Agent(LabHome.open(root / "hostile-lab"))
    try:
        isolated = Lab(agent, root / "isolated")
        in_process = Lab(agent, root / "in_process", json.loads((EXAMPLE / "campaign_in_process.json").read_text()))
        rows = ["| cheat | cause | isolated: must be | isolated | in_process: must draw | in_process |",
                "|---|---|---|---|---|---|"]
        beaten = caught = prevented = 0
        for cheat in CHEATS:
            problem = defeated(isolated, cheat, isolated.play(cheat))
            beaten += problem is None
            shown = "defeated" if problem is None else f"NOT DEFEATED: {problem[:80]}"
            expected, found = CAUGHT.get(cheat.name), "-"
            if expected:
                outcome = in_process.play(cheat.__class__(**{**cheat.__dict__, "depth": "quick"}))
                ok = bool(outcome.audit) and outcome.audit["verdict"] == "invalid" and expected in outcome.rules
                unscored = outcome.score is None and outcome.label == "metric_missing"
                caught += ok
                prevented += unscored
                found = "caught" if ok else "prevented: no score (metric line not the evaluator's)" if unscored \
                    else f"MISSED ({', '.join(sorted(outcome.rules)) or outcome.label})"
            rows.append(f"| {cheat.name} | {cheat.cause} | {cheat.defeat} | {shown} | {expected or '-'} | {found} |")
        honest_ok = 0
        for change in HONEST:
            outcome = isolated.play(change.__class__(**{**change.__dict__, "depth": "full"}))
            ok = defeated(isolated, change, outcome) is None
            honest_ok += ok
            rows.append(f"| {change.name} | honest | valid, no finding | {'valid' if ok else 'FALSE FINDING'} | - | - |")
        rows.append(f"\ncheats defeated at the isolated level: {beaten}/{len(CHEATS)}; at the in_process level, "
                    f"caught with evidence {caught}/{len(CAUGHT)} and left without a score {prevented}/{len(CAUGHT)}; "
                    f"honest changes valid with no finding: {honest_ok}/{len(HONEST)}")
        return rows
    finally:
        agent.close()


def full_audit_time(camp: TinynetCampaign, rounds: int) -> list[str]:
    """A full audit of a trial with a parent of its own: three evaluations. The reference
    is the same audit with ``runner.together`` running them one after the other."""
    from sotalab.tools.audit import runner

    parent = camp.trial("honest_learning_rate")
    child = camp.call("trial_create", campaign=camp.id, kind="param", parent=parent, hypothesis="a child")["id"]
    camp.call("workspace_write", trial=child, path="NOTES.md", content="a child of the learning-rate trial\n")
    camp.call("trial_evaluate", trial=child)
    together = runner.together

    def one_after_another(work, progress, step, total):
        return {who: call(progress) for who, call in work.items()}

    times: dict[str, list[float]] = {"together": [], "one after another": []}
    for _ in range(rounds):
        for label, how in (("one after another", one_after_another), ("together", together)):
            runner.together = how
            started = time.perf_counter()
            camp.call("audit_trial", trial=child, depth="full", seeds=3)
            times[label].append(time.perf_counter() - started)
    runner.together = together
    ours, ref = statistics.median(times["together"]), statistics.median(times["one after another"])
    return ["| full audit, 3 drawn seeds (trial + recorded seed, baseline, parent: 10 runs) | wall (median of "
            f"{rounds}) | ratio |", "|---|---|---|",
            f"| evaluations one after another (reference) | {ref:.1f} s | 1x |",
            f"| evaluations together (CPU slots: {os.environ.get('SOTALAB_CPU_SLOTS') or os.cpu_count()}) "
            f"| {ours:.1f} s | {ours / ref:.2f}x |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only-hostile", action="store_true", help="run section 4 alone")
    args = parser.parse_args()
    if args.only_hostile:
        with tempfile.TemporaryDirectory(prefix="sotalab-bench-hostile-") as tmp:
            started = time.perf_counter()
            print("## Hostile cheats (issue #10)\n")
            print("\n".join(hostile(Path(tmp))))
            print(f"\n({time.perf_counter() - started:.0f} s)")
        return
    with tempfile.TemporaryDirectory(prefix="sotalab-bench-audit-") as tmp:
        started = time.perf_counter()
        camp = TinynetCampaign(Path(tmp))
        print("## Detection (full audits, tinynet)\n")
        print("\n".join(detection(camp)))
        print(f"\n(campaign, {len(MANIFEST) + 1} evaluations and {len(MANIFEST)} full audits: "
              f"{time.perf_counter() - started:.0f} s)\n")
        print("## Full audit wall time\n")
        print("\n".join(full_audit_time(camp, args.rounds)))
        print("\n## Quick audit wall time\n")
        print("\n".join(quick_audit_time(camp, args.rounds)))
    print("\n## Diff rules on real non-training code\n")
    print("\n".join(rule_throughput()))
    with tempfile.TemporaryDirectory(prefix="sotalab-bench-hostile-") as tmp:
        print("\n## Hostile cheats (issue #10)\n")
        print("\n".join(hostile(Path(tmp))))


if __name__ == "__main__":
    main()
