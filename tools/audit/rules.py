"""The red lines: every rule an audit finding can name.

The supervisor skill lists the same ids (skills/supervisor/references/red-lines.md);
a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class Rule:
    id: str
    check: str
    severity: Severity
    meaning: str


RULES: dict[str, Rule] = {r.id: r for r in (
    # 1. protected files
    Rule("protected-changed", "protected", "fail",
         "A protected file (evaluator code or data, hashed at baseline) was changed, added or deleted."),
    # 2. evaluator integrity
    Rule("score-not-server-run", "integrity", "fail",
         "The trial's score has no matching succeeded evaluation run by the server for this commit."),
    Rule("ledger-run-mismatch", "integrity", "fail",
         "The score or metrics in the ledger differ from what the evaluation run produced."),
    Rule("ambiguous-metric-output", "integrity", "fail",
         "The run printed the primary metric more than once with different values."),
    # 3. the diff against the baseline
    Rule("eval-code-edit", "diff_rules", "fail",
         "The diff edits evaluation or metric code (the evaluator's files, protected files, or files named eval*/metric*/score*)."),
    Rule("metric-literal", "diff_rules", "fail",
         "A literal metric value is printed, returned or written (e.g. print('accuracy=0.97'))."),
    Rule("metrics-file-write", "diff_rules", "fail",
         "Trial code writes or opens for writing a file the evaluator reads metrics from."),
    Rule("monkeypatch-metric", "diff_rules", "fail",
         "A metric or evaluation function of an imported module is reassigned (monkeypatched)."),
    Rule("monkeypatch-data", "diff_rules", "fail",
         "A data loader, split or dataset function of an imported module is reassigned."),
    Rule("monkeypatch-dependency", "diff_rules", "fail",
         "An attribute of the evaluator's own modules, or a function of a library it imports (numpy, json, ...), is replaced, so the evaluator runs the trial's version."),
    Rule("seed-override", "diff_rules", "fail",
         "The evaluator's seed is overridden: the seed variable is reassigned or a seeding function replaced."),
    Rule("seed-pinned", "diff_rules", "warn",
         "A random generator is seeded with a literal, so runs no longer vary with the evaluator's seed."),
    Rule("held-out-read", "diff_rules", "fail",
         "Trial code reads held-out or test data (held-out paths, test files, the held-out mount variable)."),
    Rule("eval-data-rebuild", "diff_rules", "fail",
         "Trial code reads a seed of the evaluator's data module, so it can rebuild the validation or test data."),
    Rule("module-shadow", "diff_rules", "fail",
         "An added file (a package, extension or module) is imported in place of an evaluator module or a module the evaluator imports."),
    Rule("frame-introspection", "diff_rules", "fail",
         "Trial code reads its callers' frames, the interpreter's object graph or __main__ (where the evaluator keeps its validation labels)."),
    Rule("split-change", "diff_rules", "fail",
         "Split construction, stratification, or filtering/relabelling of validation or test data changed."),
    Rule("data-resample", "diff_rules", "warn",
         "Training data is filtered, relabelled or resampled; legitimate at times, always reviewed."),
    Rule("metric-param-change", "diff_rules", "fail",
         "A metric parameter changed (k in recall@k, windows, averaging, thresholds) or best-of-N replaces the mean."),
    Rule("output-tamper", "diff_rules", "fail",
         "The output channel the evaluator prints to is replaced or closed (print, sys.stdout/sys.stderr or their write, file descriptors 1 and 2)."),
    Rule("early-exit", "diff_rules", "fail",
         "Trial code ends the process (os._exit, abort, or an exit at module level), so the evaluator never reports its own result."),
    Rule("output-hook", "diff_rules", "warn",
         "Code runs at interpreter exit or on an uncaught exception, after or around what the evaluator prints."),
    Rule("module-patch", "diff_rules", "warn",
         "An attribute of an imported module is reassigned at import time."),
    Rule("dynamic-code", "diff_rules", "fail",
         "Trial code runs or loads code that is not tracked source: exec, eval, compile, marshal, code objects, a module loaded from a path."),
    Rule("dynamic-name", "diff_rules", "fail",
         "Trial code imports a module or writes a namespace through a name built at run time (__import__, import_module, sys.modules, vars())."),
    Rule("builtins-patch", "diff_rules", "fail",
         "Trial code names or changes builtins, which the evaluator's code reads too."),
    Rule("process-spawn", "diff_rules", "warn",
         "Trial code starts another process (what it runs is outside the diff)."),
    Rule("native-code", "diff_rules", "warn",
         "Trial code loads native code (ctypes, cffi), which no check can read."),
    Rule("startup-file", "diff_rules", "fail",
         "An added sitecustomize.py, usercustomize.py or .pth file would run when Python starts, before any other code."),
    Rule("bytecode-file", "diff_rules", "fail",
         "The diff adds compiled code (.pyc, __pycache__, extension modules) whose source nobody reviews."),
    Rule("binary-file", "diff_rules", "fail",
         "The diff adds a binary file outside the campaign's declared data paths (no rule can read it; a pickle can carry code)."),
    Rule("data-file", "diff_rules", "fail",
         "The diff adds a data file (csv, npz, checkpoints...) outside the campaign's declared data paths."),
    # 4. other metrics
    Rule("secondary-regressed", "metrics", "fail",
         "A secondary metric got worse than the baseline by more than its tolerance (trading metrics)."),
    Rule("metric-missing", "metrics", "fail",
         "A secondary metric the campaign guards, reported by the baseline, is missing from the trial's evaluation (it cannot be checked; an early exit after a planted score looks like this)."),
    # 5. reproducibility
    Rule("not-reproduced", "reproduce", "fail",
         "Re-running the evaluation from a clean checkout of the trial's commit gave a different score."),
    # 6. significance
    Rule("not-significant", "significance", "fail",
         "The gain over the baseline does not clear the significance test over seeds (noise floor)."),
    Rule("seed-ignored", "significance", "fail",
         "The trial scores the same on every seed while the baseline varies: the seed was pinned, so its noise is unmeasured."),
    Rule("below-min-effect", "significance", "fail",
         "The gain is smaller than the campaign's minimum effect size."),
    Rule("seed-failed", "significance", "fail",
         "A seed the audit drew crashed, timed out or gave no primary metric: it counts against the trial, never dropped."),
    Rule("no-gain", "gain", "fail",
         "The trial scores no better than the baseline: whatever else holds, there is no gain to call valid."),
    # 7. budgets
    Rule("over-budget", "budget", "fail",
         "Wall time, memory, GPU memory, artifact size or parameter count exceeds the campaign's budget."),
    # 8. runtime evidence (in_process level)
    Rule("runtime-eval-data-read", "runtime", "fail",
         "At run time, trial code opened validation, held-out or label data (or wrote to it)."),
    Rule("runtime-metric-write", "runtime", "fail",
         "At run time, trial code wrote a file the evaluator's metrics are read from."),
    Rule("runtime-metric-print", "runtime", "fail",
         "At run time, trial code printed a line the metric rules read."),
    Rule("runtime-shadow-import", "runtime", "fail",
         "A module from the trial's tree was imported under a standard-library or evaluator module's name."),
    Rule("runtime-untracked-code", "runtime", "fail",
         "Code that is not tracked source ran: a string passed to exec/eval/compile by trial code, a module written at run time or changed since the commit, a pickle that calls a function."),
    Rule("runtime-bytecode", "runtime", "fail",
         "Bytecode that was not compiled from the committed source ran (a planted .pyc, marshal)."),
    Rule("runtime-builtins", "runtime", "fail",
         "Names in builtins were replaced or added during the run."),
    Rule("runtime-audit-hook", "runtime", "fail",
         "The code installed an audit hook of its own (it could watch or shape what the evaluator does)."),
    Rule("runtime-forged-record", "runtime", "fail",
         "A record in the runtime channel was not written by the hook: the run wrote evidence about itself."),
    Rule("runtime-introspection", "runtime", "fail",
         "Trial code walked the object graph, took every thread's frames or installed a tracer: the ways to other code's locals, the hook's included."),
    Rule("runtime-blind-spawn", "runtime", "fail",
         "Trial code started a program the runtime hook does not follow (a shell, a compiled program, Python told to skip its start-up files): what it did leaves no record."),
    Rule("runtime-missing", "runtime", "fail",
         "An in_process run left no runtime evidence: the hook never started, or its channel was cut."),
    Rule("runtime-generated-code", "runtime", "warn",
         "A library built code at run time for a line of trial code (dataclasses, namedtuple); reviewed."),
    Rule("runtime-native", "runtime", "warn",
         "Trial code loaded or called native code (ctypes), which the hook cannot see into."),
    Rule("runtime-spawn", "runtime", "warn",
         "Trial code started another process."),
    Rule("runtime-overflow", "runtime", "fail",
         "The run produced more records than the channel keeps; what it did after that is unknown, so the evidence cannot vouch for it (a run can spend the budget on purpose)."),
    Rule("runtime-abnormal-exit", "runtime", "warn",
         "A process never reached a normal exit (killed, or left through os._exit)."),
    # 9. finalize
    Rule("held-out-failed", "held_out_agreement", "fail",
         "The claim failed on held-out seeds where every validation seed of its audit ran: code can tell the splits apart, and a claim must hold on the held-out split."),
    Rule("held-out-disagrees", "held_out_agreement", "fail",
         "The held-out gain disagrees with the validation gain by more than their noise allows (below it: tuning to, or training on, the validation split)."),
)}
