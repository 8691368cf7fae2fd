"""Runtime evidence -> findings (tools/audit/runtime.py): each record kind of the hook's
format becomes a finding with the trial's file and line, only when trial code (not the
protected evaluator, not a library on its own) did it; honest records stay quiet."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sotalab.tools.audit import runtime
from sotalab.tools.audit.rules import RULES
from sotalab.tools.campaigns import CampaignCreate

REPO = Path(__file__).resolve().parent.parent
SPEC = CampaignCreate.model_validate(json.loads((REPO / "examples" / "tinynet" / "campaign_in_process.json").read_text()))
TRAIN = "import numpy as np\n\n\ndef fit(x, y):\n    exec(src)\n    return Point(1, 2)\n"
TRACKED = {"train.py": hashlib.sha256(TRAIN.encode()).hexdigest(), "evaluate.py": "e" * 64, "data.py": "d" * 64,
           "metrics.py": "m" * 64, "helpers/__init__.py": "h" * 64}
CTX = runtime.RuntimeContext.for_campaign(SPEC, TRACKED, {"train.py": TRAIN})
START, EXIT = {"ev": "start", "pid": 7}, {"ev": "exit", "pid": 7}


def judge(*records: dict) -> list[runtime.Finding]:
    return runtime.findings(runtime.RunEvents(run=1, seed=0, records=[START, *records, EXIT]), CTX)


def rules(*records: dict) -> set[str]:
    return {f.rule for f in judge(*records)}


def test_the_context_comes_from_the_campaign():
    assert CTX.is_protected("evaluate.py") and CTX.is_protected("data/train.npz") and not CTX.is_protected("train.py")
    assert CTX.is_eval_data("labels/val_labels.npz") and CTX.is_eval_data("heldout/test_inputs.npz")
    assert not CTX.is_eval_data("data/train.npz")  # training data the trial may read itself
    assert CTX.metrics_files == ["metrics.json"] and {"data", "metrics", "evaluate"} <= CTX.protected_modules


def test_a_trial_reading_validation_labels_is_caught_at_its_line():
    """The makemore leak: the validation file added to the training data."""
    [finding] = judge({"ev": "open", "root": "tree", "path": "labels/val_labels.npz", "write": False,
                       "by": "train.py:12"})
    assert finding.rule == "runtime-eval-data-read" and finding.by == "train.py:12"
    assert "labels/val_labels.npz" in finding.detail


def test_the_evaluator_reading_its_own_labels_and_trial_reading_training_data_are_fine():
    assert not judge({"ev": "open", "root": "tree", "path": "labels/val_labels.npz", "write": False,
                      "by": "data.py:40"},
                     {"ev": "open", "root": "tree", "path": "data/train.npz", "write": False, "by": "train.py:9"},
                     {"ev": "open", "root": "tree", "path": "metrics.json", "write": True, "by": "evaluate.py:50"})


def test_a_trial_reading_labels_through_the_evaluators_loader_is_the_trials_doing():
    """fit() calls data.load_splits(), whose own open() reads the labels: the hook's chain of
    tree frames names the trial's line below the protected ones."""
    record = {"ev": "open", "root": "tree", "path": "labels/val_labels.npz", "write": False, "by": "data.py:40",
              "chain": ["data.py:40", "data.py:61", "train.py:77", "evaluate.py:33"]}
    [finding] = judge(record)
    assert finding.rule == "runtime-eval-data-read" and finding.by == "train.py:77"
    assert not judge({**record, "chain": ["data.py:40", "data.py:61", "evaluate.py:33"]})


def test_anything_of_the_held_out_root_and_writes_to_metric_outputs_are_caught():
    assert rules({"ev": "open", "root": "held_out", "path": "heldout/test_labels.npz", "write": False,
                  "by": "train.py:3"}) == {"runtime-eval-data-read"}
    assert rules({"ev": "open", "root": "tree", "path": "metrics.json", "write": True,
                  "by": "train.py:30"}) == {"runtime-metric-write"}
    assert rules({"ev": "metric_print", "text": "accuracy=0.99", "by": "train.py:31"}) == {"runtime-metric-print"}
    assert not rules({"ev": "metric_print", "text": "accuracy=0.61", "by": "evaluate.py:60"})


@pytest.mark.parametrize("path, expected", [
    ("gettext.py", "runtime-shadow-import"),          # imported by argparse, from the trial's tree
    ("json/__init__.py", "runtime-shadow-import"),
    ("metrics/__init__.py", "runtime-shadow-import"),  # in place of the protected metrics.py
    ("scratch.py", "runtime-untracked-code"),         # written at run time, never committed
])
def test_modules_that_should_not_have_run(path, expected):
    assert rules({"ev": "module", "path": path, "sha256": "0" * 64, "compiled": True, "by": "train.py:1"}) == {expected}


def test_tracked_modules_must_run_as_committed():
    good = {"ev": "module", "path": "train.py", "sha256": TRACKED["train.py"], "compiled": True, "by": None}
    assert not judge(good)
    assert rules({**good, "sha256": "f" * 64}) == {"runtime-untracked-code"}  # rewritten during the run
    assert rules({**good, "compiled": False}) == {"runtime-bytecode"}  # a planted .pyc ran instead
    assert not judge({"ev": "module", "path": "helpers/__init__.py", "sha256": TRACKED["helpers/__init__.py"],
                      "compiled": True, "by": "train.py:2"})


def test_dynamic_code_fails_where_trial_code_calls_it_and_is_reviewed_where_a_library_builds_it():
    [direct] = judge({"ev": "exec", "filename": "<string>", "by": "train.py:5"})
    assert direct.rule == "runtime-untracked-code" and direct.value == "exec(src)"
    [library] = judge({"ev": "compile", "filename": "<string>", "by": "train.py:6"})
    assert library.rule == "runtime-generated-code" and RULES[library.rule].severity == "warn"
    assert not judge({"ev": "exec", "filename": "<string>", "by": "evaluate.py:20"})


def test_pickles_that_call_code_bytecode_from_bytes_builtins_and_hooks_are_caught():
    assert rules({"ev": "pickle", "what": "builtins.exec", "by": "train.py:8"}) == {"runtime-untracked-code"}
    assert not judge({"ev": "pickle", "what": "numpy.core.multiarray._reconstruct", "by": "train.py:8"})
    assert rules({"ev": "marshal", "by": "train.py:4"}) == {"runtime-bytecode"}
    assert rules({"ev": "builtins", "names": ["round"], "by": None}) == {"runtime-builtins"}
    assert rules({"ev": "audit_hook", "by": "train.py:2"}) == {"runtime-audit-hook"}


def test_native_code_spawns_and_odd_endings_are_warnings():
    found = rules({"ev": "ctypes", "what": "ctypes.dlopen libevil.so", "by": "train.py:3"},
                  {"ev": "spawn", "call": "subprocess.Popen", "argv": ["sh"], "by": "train.py:4"})
    assert found == {"runtime-native", "runtime-spawn"}
    assert all(RULES[r].severity == "warn" for r in found)
    # Evidence that ran out cannot vouch for what came after: a run can spend the budget on purpose.
    assert rules({"ev": "overflow"}) == {"runtime-overflow"} and RULES["runtime-overflow"].severity == "fail"
    ended = runtime.findings(runtime.RunEvents(run=1, seed=0, records=[START]), CTX)
    assert [f.rule for f in ended] == ["runtime-abnormal-exit"]


def test_a_program_the_hook_cannot_follow_started_by_trial_code_fails(tmp_path):
    """The hook says whether a new process runs it too and whether the tree chose what
    runs; a shell or an isolated Python started by trial code is blind, a library's own
    helper program and a hooked Python child are only reviewed."""
    records = _hooked_run(tmp_path, (
        "import os, subprocess, sys\n"
        "subprocess.run(['sh', '-c', 'true'])\n"
        "subprocess.run([sys.executable, '-I', '-c', 'pass'])\n"
        "subprocess.run([sys.executable, '-c', 'pass'])\n"
        "subprocess.run([sys.executable, '-c', 'pass'], env={**os.environ, 'PYTHONPATH': '.:' + os.environ['PYTHONPATH']})\n"
        "open('python', 'w').write('#!/bin/sh\\n'); os.chmod('python', 0o755)\n"
        "subprocess.run(['./python'])\n"
        "del os.environ['SOTALAB_EVENTS']\n"
        "subprocess.run([sys.executable, '-c', 'pass'])\n"))
    spawns = [(r["by"], r["hooked"], r["direct"]) for r in records if r["ev"] == "spawn"]
    assert spawns == [("train.py:2", False, True), ("train.py:3", False, True), ("train.py:4", True, True),
                      ("train.py:5", False, True), ("train.py:7", False, True), ("train.py:9", False, True)], spawns
    found = {(f.rule, f.by) for f in runtime.findings(runtime.RunEvents(1, 0, records), CTX)}
    assert {("runtime-blind-spawn", f"train.py:{n}") for n in (2, 3, 5, 7, 9)} <= found
    assert ("runtime-spawn", "train.py:4") in found and RULES["runtime-blind-spawn"].severity == "fail"
    library = {"ev": "spawn", "call": "subprocess.Popen", "argv": ["/sbin/ldconfig", "-p"], "by": "train.py:1",
               "hooked": False, "direct": False}
    assert rules(library) == {"runtime-spawn"}


def test_a_run_without_evidence_fails_and_no_run_skips():
    silent = runtime.check([runtime.RunEvents(run=4, seed=1, records=[])], CTX)
    assert silent.verdict == "fail" and silent.evidence[0].rule == "runtime-missing"
    assert runtime.check([], CTX).verdict == "skip"


def test_check_reports_file_line_run_and_seed_once_per_finding():
    leak = {"ev": "open", "root": "tree", "path": "labels/val_labels.npz", "write": False, "by": "train.py:12"}
    runs = [runtime.RunEvents(run=r, seed=s, records=[START, leak, EXIT]) for r, s in ((1, 0), (2, 5))]
    result = runtime.check(runs, CTX)
    assert result.verdict == "fail" and len(result.evidence) == 1
    [evidence] = result.evidence
    assert (evidence.file, evidence.line, evidence.rule) == ("train.py", 12, "runtime-eval-data-read")
    assert "run 1 (seed 0)" in evidence.detail
    honest = runtime.check([runtime.RunEvents(run=3, seed=0, records=[START, EXIT])], CTX)
    assert honest.verdict == "pass" and not honest.evidence


def test_every_runtime_rule_is_a_red_line():
    named = {
        "runtime-eval-data-read", "runtime-metric-write", "runtime-metric-print", "runtime-shadow-import",
        "runtime-untracked-code", "runtime-bytecode", "runtime-builtins", "runtime-audit-hook", "runtime-missing",
        "runtime-generated-code", "runtime-native", "runtime-spawn", "runtime-overflow", "runtime-abnormal-exit",
        "runtime-forged-record", "runtime-introspection", "runtime-blind-spawn"}
    assert named == {r.id for r in RULES.values() if r.check == "runtime"}


def _hooked_run(tmp_path, code: str) -> list[dict]:
    """``code`` run under the real hook, its channel a plain file; the records as read."""
    import os
    import subprocess
    import sys

    from sotalab.tools.evaluation.steps import HOOK_DIR
    from sotalab.tools.runs.events import EventSink

    sink = EventSink(tmp_path)  # the run's channel, as its supervisor drains it
    env = {**os.environ, "PYTHONPATH": str(HOOK_DIR), "SOTALAB_EVENTS": str(sink.path),
           "SOTALAB_HOOK_ROOT": str(tmp_path), "SOTALAB_METRIC_REGEX": json.dumps([r"accuracy=([0-9.]+)"])}
    (tmp_path / "train.py").write_text(code)
    try:
        subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, check=True, timeout=60)
    finally:
        sink.close()
    return runtime.read_events(tmp_path)


def test_only_the_hooks_own_records_are_verified(tmp_path):
    """The hook signs its records; a line the run writes into the channel itself, even
    one copied from the hook's own, never passes for the hook's, and a half line the run
    writes in front of a record does not hide it."""
    records = _hooked_run(tmp_path, (
        "import os, json\n"
        "fd = os.open(os.environ['SOTALAB_EVENTS'], os.O_WRONLY)\n"
        "os.write(fd, b'{\"ev\": \"metric_print\", \"text\": \"accuracy=0.99\", \"by\": \"evaluate.py:60\"}\\n')\n"
        "os.write(fd, b'{\"half')  # the hook's next record lands on this line\n"
        "open('labels.txt', 'w').write('x')\n"
        "print('accuracy=0.58')\n"))
    by_kind = {(r["ev"], r["auth"]) for r in records}
    assert ("start", "verified") in by_kind and ("exit", "verified") in by_kind
    assert ("metric_print", "forged") in by_kind and ("metric_print", "verified") in by_kind
    opened = [r for r in records if r["ev"] == "open" and r["path"] == "labels.txt"]
    assert opened and opened[0]["auth"] == "verified" and opened[0]["by"] == "train.py:5"
    assert all(r["root"] for r in records if r["auth"] == "verified")
    [forged] = [f for f in runtime.findings(runtime.RunEvents(1, 0, records), CTX) if f.rule == "runtime-forged-record"]
    assert forged.by is None  # the forger's "by" is not evidence against the evaluator
