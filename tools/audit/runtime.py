"""Check 8 (in_process level): what the evaluated code did at run time, as findings.

The runtime hook (``evaluation/hook/sitecustomize.py``, whose docstring defines the
record format) writes one JSON record per event into each in_process run's
``events.jsonl``. This check is a pure function of those records and of what the audit
knows about the commit: which files are protected (the evaluator's own code may read
labels and write metrics), which are evaluation data (validation, held-out, labels), and
the bytes of every tracked file. Each record ``by`` "file:line" of trial code becomes a
finding at that file and line. The rules are the table ``EVENT_RULES``.

Attribution is deny-by-default: evidence clears trial code only where the evaluator's
own frames show it did the thing. An open of evaluation data or a metrics file with no
frame of the evaluated tree on the way (library code in a thread or process the trial
handed the work to, a callback) counts against the trial; the hook continues a thread's
chain with that of the code that started it, so a thread pool shows the trial's line.

What this cannot see: native code (ctypes, extension modules) acts below the hook. A
record the trial writes into the channel itself is possible (it can add lines, never
take one back); the hook signs its own, and a record that is not the hook's is a finding
(``runtime-forged-record``), never evidence for the trial. That is why the isolated level,
where no trial code runs beside the scorer, is the default wherever the evaluator allows.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..protected import matches
from .result import CheckResult, Evidence
from .rules import RULES

# A protected data file whose name says it holds evaluation data: a split's name, or
# labels and targets (of any split but the training one, below).
EVAL_SPLIT_NAME_RE = re.compile(r"(^|[/_.-])(val|valid|validation|dev|test|tests|heldout|held_out|holdout|gold)"
                                r"([/_.-]|$)", re.IGNORECASE)
EVAL_DATA_NAME_RE = re.compile(r"(^|[/_.-])(label|labels|target|targets)([/_.-]|$)", re.IGNORECASE)
# The training part's labels ("train-labels-idx1-ubyte", MNIST's) are training data.
TRAIN_NAME_RE = re.compile(r"(^|[_.-])(train|training)([_.-]|$)", re.IGNORECASE)
# A source line that calls dynamic code itself (rather than a decorator or class whose
# library builds code, as dataclasses and namedtuple do).
DYNAMIC_CALL_RE = re.compile(r"\b(exec|eval|compile|execfile|run_path|run_module|exec_module|load_module|loads?)\s*\(")
# Unpickling these runs code: pickle's own way of calling a function.
CODE_RUNNING_CLASSES = re.compile(r"^(builtins\.(exec|eval|compile|getattr|__import__|open|setattr)"
                                  r"|os\.\w+|posix\.\w+|subprocess\.\w+|sys\.\w+|importlib\.\w+|runpy\.\w+"
                                  r"|types\.(CodeType|FunctionType)|marshal\.\w+|ctypes\.\w+)$")


@dataclass
class RuntimeContext:
    """What the check knows about the campaign and the audited commit."""

    protected_globs: list[str] = field(default_factory=list)   # evaluator code and data (and its scripts)
    eval_data_globs: list[str] = field(default_factory=list)   # label and held-out paths
    metrics_files: list[str] = field(default_factory=list)     # files the evaluator's metrics are read from
    tracked: dict[str, str] = field(default_factory=dict)      # repo path -> sha256 of the exported file
    sources: dict[str, str] = field(default_factory=dict)      # repo path -> text, for reading the line at ``by``
    stdlib: frozenset[str] = frozenset(sys.stdlib_module_names)

    @classmethod
    def for_campaign(cls, campaign, tracked: dict[str, str], sources: dict[str, str]) -> "RuntimeContext":
        evaluator = campaign.evaluator
        scripts = [a for a in [*(evaluator.command or []), *(evaluator.predict or []), *(evaluator.score or [])]
                   if a.endswith(".py")]
        return cls(protected_globs=[*campaign.protected_paths, *scripts],
                   eval_data_globs=[*campaign.label_paths, *campaign.held_out_paths],
                   metrics_files=sorted({m.json_file for m in evaluator.metrics if m.json_file}),
                   tracked=tracked, sources=sources)

    def is_protected(self, path: str) -> bool:
        return matches(path, self.protected_globs)

    def is_eval_data(self, path: str) -> bool:
        if matches(path, self.eval_data_globs):
            return True
        if path.endswith(".py") or not self.is_protected(path):
            return False
        if EVAL_SPLIT_NAME_RE.search(path):
            return True
        return bool(EVAL_DATA_NAME_RE.search(path)) and not TRAIN_NAME_RE.search(PurePosixPath(path).name)

    @property
    def protected_modules(self) -> set[str]:
        return {PurePosixPath(g).stem for g in self.protected_globs if g.endswith(".py") and not re.search(r"[*?\[]", g)}


@dataclass
class RunEvents:
    """One in_process run's records."""

    run: int
    seed: int | None
    records: list[dict]


@dataclass(frozen=True)
class Finding:
    rule: str
    detail: str
    by: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class EventRule:
    """Records of kind ``ev`` that ``judge`` turns into a finding (or None: nothing wrong)."""

    ev: str
    judge: Callable[[dict, RuntimeContext], Finding | None]


def _where(by: str | None) -> tuple[str | None, int | None]:
    if not by or ":" not in by:
        return by, None
    path, _, line = by.rpartition(":")
    return path, int(line) if line.isdigit() else None


def _trial_frame(record: dict, ctx: RuntimeContext) -> str | None:
    """The innermost frame of trial code (in the evaluated tree, outside the protected
    files) behind a record: ``by``, or where the hook gives the ``chain`` of tree frames
    (innermost first), the first unprotected one, so that trial code reading labels
    through the evaluator's own loader is still the trial's doing."""
    for by in [record.get("by"), *(record.get("chain") or [])]:
        path, _ = _where(by)
        if path is not None and not ctx.is_protected(path):
            return by
    return None


def _trial_code(record: dict, ctx: RuntimeContext) -> bool:
    return _trial_frame(record, ctx) is not None


def _line_text(by: str | None, ctx: RuntimeContext) -> str:
    path, line = _where(by)
    lines = ctx.sources.get(path or "", "").splitlines()
    return lines[line - 1] if line and 0 < line <= len(lines) else ""


def _unattributed(record: dict) -> bool:
    """No frame of the evaluated tree led to the record: not the evaluator's doing."""
    return not record.get("by") and not record.get("chain")


UNATTRIBUTED = " with no code of the evaluated tree on the way (a thread, process or callback the trial set up)"


UNNAMED = (" in a process that does not run an evaluator script (python -c, multiprocessing's spawn): the hook "
           "cannot tell who started it")


def _open(record: dict, ctx: RuntimeContext) -> Finding | None:
    by = _trial_frame(record, ctx)
    nobody = _unattributed(record) or record.get("unnamed_process")
    if by is None and not nobody:
        return None
    how = "" if by else (UNNAMED if record.get("unnamed_process") else UNATTRIBUTED)
    path = str(record.get("path", ""))
    held = record.get("root") == "held_out"
    if record.get("write") and (held or ctx.is_eval_data(path)):
        return Finding("runtime-eval-data-read", f"writes evaluation data {path}{how}", by, path)
    if record.get("write") and PurePosixPath(path).name in {PurePosixPath(m).name for m in ctx.metrics_files}:
        return Finding("runtime-metric-write", f"writes {path}, which the evaluator's metrics are read from{how}",
                       by, path)
    if held or ctx.is_eval_data(path):
        return Finding("runtime-eval-data-read", f"reads {'held-out' if held else 'evaluation'} data {path}{how}",
                       by, path)
    return None


def _module(record: dict, ctx: RuntimeContext) -> Finding | None:
    path = str(record.get("path", ""))
    parts = PurePosixPath(path).parts
    top = PurePosixPath(parts[0]).stem if parts else ""
    if top in ctx.stdlib:
        return Finding("runtime-shadow-import", f"{path} from the trial's tree was imported as the standard "
                       f"library's {top!r}", record.get("by"), path)
    if top in ctx.protected_modules and not ctx.is_protected(path):
        return Finding("runtime-shadow-import", f"{path} was imported in place of the evaluator's module {top!r}",
                       record.get("by"), path)
    if path not in ctx.tracked:
        return Finding("runtime-untracked-code", f"module code ran from {path}, which the commit does not track "
                       "(written at run time)", record.get("by"), path)
    if record.get("sha256") and record["sha256"] != ctx.tracked[path]:
        return Finding("runtime-untracked-code", f"{path} ran with bytes that differ from the committed file",
                       record.get("by"), path)
    if record.get("compiled") is False:
        return Finding("runtime-bytecode", f"the code that ran for {path} was not compiled from its source "
                       "(bytecode from elsewhere)", record.get("by"), path)
    return None


def _dynamic(record: dict, ctx: RuntimeContext) -> Finding | None:
    if not _trial_code(record, ctx):
        return None
    line = _line_text(record.get("by"), ctx)
    what = f"{record['ev']} of code that is not tracked source ({record.get('filename') or '?'})"
    if DYNAMIC_CALL_RE.search(line) or not line:
        return Finding("runtime-untracked-code", what, record["by"], line.strip() or None)
    # A library building code for a decorator or class (dataclasses, namedtuple): reviewed, not failed.
    return Finding("runtime-generated-code", what + " from a library call", record["by"], line.strip())


def _marshal(record: dict, ctx: RuntimeContext) -> Finding | None:
    if not _trial_code(record, ctx):
        return None
    return Finding("runtime-bytecode", "loads code objects from bytes (marshal)", record["by"])


def _pickle(record: dict, ctx: RuntimeContext) -> Finding | None:
    what = str(record.get("what", ""))
    if not CODE_RUNNING_CLASSES.match(what):
        return None
    return Finding("runtime-untracked-code", f"unpickling calls {what}: code carried in data", record.get("by"), what)


def _builtins(record: dict, ctx: RuntimeContext) -> Finding | None:
    names = [str(n) for n in record.get("names") or []]
    return Finding("runtime-builtins", f"builtins replaced or added: {', '.join(names[:10])}", record.get("by"),
                   ", ".join(names[:10])) if names else None


def _metric_print(record: dict, ctx: RuntimeContext) -> Finding | None:
    if not _trial_code(record, ctx):
        return None
    return Finding("runtime-metric-print", "trial code printed a line the metric rules read", record["by"],
                   str(record.get("text", ""))[:200])


def _blind_spawn(record: dict, ctx: RuntimeContext) -> Finding | None:
    """Trial code itself started a program the hook does not follow (a shell, a compiled
    program, Python told to skip its start-up files): whatever that program reads or
    writes leaves no record, so the evidence cannot vouch for the run."""
    if record.get("hooked") is not False or not record.get("direct") or not _trial_code(record, ctx):
        return None
    return Finding("runtime-blind-spawn", "starts a program the runtime hook cannot follow", record["by"],
                   json.dumps(record.get("argv"))[:200])


def _reviewed(rule: str, detail: str) -> Callable[[dict, RuntimeContext], Finding | None]:
    def judge(record: dict, ctx: RuntimeContext) -> Finding | None:
        if not _trial_code(record, ctx):
            return None
        value = record.get("what") or record.get("argv")
        return Finding(rule, detail, record["by"], json.dumps(value)[:200] if value is not None else None)
    return judge


EVENT_RULES: tuple[EventRule, ...] = (
    EventRule("open", _open),
    EventRule("module", _module),
    EventRule("exec", _dynamic),
    EventRule("compile", _dynamic),
    EventRule("marshal", _marshal),
    EventRule("pickle", _pickle),
    EventRule("builtins", _builtins),
    EventRule("metric_print", _metric_print),
    EventRule("audit_hook", lambda r, c: Finding("runtime-audit-hook", "the code installed an audit hook of its own",
                                                 r.get("by"))),
    EventRule("ctypes", _reviewed("runtime-native", "loads or calls native code (ctypes), which the hook cannot see")),
    EventRule("spawn", lambda r, c: _blind_spawn(r, c) or _reviewed("runtime-spawn", "starts another process")(r, c)),
    EventRule("introspect", lambda r, c: Finding("runtime-introspection", f"{r.get('what')}: reaches other code's "
                                                 "frames or objects (the hook's among them)", r["by"], r.get("what"))
              if _trial_code(r, c) else None),
    EventRule("overflow", lambda r, c: Finding("runtime-overflow", "the record budget ran out: what the run did "
                                               "after that left no record")),
)
RULES_BY_EVENT: Mapping[str, tuple[EventRule, ...]] = {
    ev: tuple(r for r in EVENT_RULES if r.ev == ev) for ev in {r.ev for r in EVENT_RULES}}


def findings(run: RunEvents, ctx: RuntimeContext) -> list[Finding]:
    """Every finding in one run's records, once each."""
    found: dict[tuple, Finding] = {}
    genuine = [r for r in run.records if r.get("auth") != "forged"]
    forged = [r for r in run.records if r.get("auth") == "forged"]
    if forged:
        found[("runtime-forged-record",)] = Finding(
            "runtime-forged-record", f"{len(forged)} record(s) in the runtime channel were not written by the hook "
            f"(unsigned, or signed for no process the hook started), e.g. a {str(forged[0].get('ev'))[:40]!r} record",
            None,  # whatever the record says: its "by" is the forger's claim
            json.dumps({k: v for k, v in forged[0].items() if k not in ("auth", "root")}, default=str)[:200])
    # A child that was not forked starts with no frame of whoever started it: unless it
    # runs an evaluator script, what it does is nobody's the evidence can clear.
    starts_of = [r for r in genuine if r.get("ev") == "start"]  # the first is the process the run started
    unnamed: set = set()
    for r in starts_of[1:]:
        if r.get("forked"):  # a fork keeps its frames, and is as named as the process it came from
            if r.get("parent_stream") in unnamed:
                unnamed.add(r.get("stream"))
        elif "main" in r and not (r.get("main") and ctx.is_protected(str(r["main"]))):
            unnamed.add(r.get("stream"))
    for record in genuine:
        if record.get("stream") in unnamed:
            record = {**record, "unnamed_process": True}
        for rule in RULES_BY_EVENT.get(record.get("ev", ""), ()):
            finding = rule.judge(record, ctx)
            if finding:
                found.setdefault((finding.rule, finding.by, finding.value), finding)
    starts = {r.get("stream", r.get("pid")) for r in genuine if r.get("ev") == "start"}
    exits = {r.get("stream", r.get("pid")) for r in genuine if r.get("ev") == "exit" and r.get("auth") != "unverified"}
    if not starts:
        found[("runtime-missing",)] = Finding("runtime-missing", "the run left no runtime evidence (the hook never "
                                              "started, or its channel was cut)")
    for pid in sorted(starts - exits, key=str):
        found[("runtime-abnormal-exit", pid)] = Finding(
            "runtime-abnormal-exit", f"process {pid} never reached a normal exit (killed, or left through os._exit)")
    return list(found.values())


def check(runs: Sequence[RunEvents], ctx: RuntimeContext) -> CheckResult:
    """Runtime evidence of the in_process runs behind a score: fail on any finding of a
    failing rule (``rules.RULES``), warn on the rest (reviewed, not disqualifying)."""
    if not runs:
        return CheckResult(name="runtime", verdict="skip", summary="no in_process run to read runtime evidence from")
    evidence, seen = [], set()
    for run in runs:
        for f in findings(run, ctx):
            key = (f.rule, f.by, f.value)
            if key in seen:
                continue
            seen.add(key)
            path, line = _where(f.by)
            evidence.append(Evidence(rule=f.rule, file=path, line=line, value=f.value,
                                     detail=f"run {run.run} (seed {run.seed}): {f.detail}"))
    failing = [e for e in evidence if RULES[e.rule].severity == "fail"]
    records = sum(len(r.records) for r in runs)
    return CheckResult.of(
        "runtime", evidence, fail=failing,
        ok=f"{records} runtime record(s) from {len(runs)} run(s): nothing trial code did touches evaluation",
        bad="; ".join(sorted({e.detail.split(": ", 1)[-1] for e in (failing or evidence)}))[:400],
        data={"runs": [r.run for r in runs], "records": records, "rules": sorted({e.rule for e in evidence})})


def read_events(run_dir: Path) -> list[dict]:
    """The records of one run (``events.jsonl``), authenticated (``events.read``): a line
    that is no record comes back as a forged ``garbage`` record."""
    from ..runs import events

    return [r for r in events.read(run_dir) if isinstance(r, dict)]
