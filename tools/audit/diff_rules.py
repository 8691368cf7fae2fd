"""Check 3: static rules on the trial's diff against the baseline.

Each finding names a rule from ``rules.RULES``. The rules read added lines (and, for
split changes, removed ones) of code and config files; comments and prose files are
skipped so that describing a change never trips a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

from ..protected import matches
from . import diffparse
from .result import CheckResult, Evidence
from .rules import RULES

PROSE_SUFFIXES = {".md", ".rst", ".txt", ".tex", ".bib", ".html"}
CONFIG_SUFFIXES = {".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".conf"}
EVAL_FILE_RE = re.compile(r"(^|/)(eval|evaluate|evaluation|evaluator|metric|metrics|scoring|scorer|score|benchmark)[^/]*\.py$",
                          re.IGNORECASE)
# Names that mean "a metric" whatever the campaign calls its own.
GENERIC_METRICS = ("accuracy", "acc", "f1", "macro_f1", "micro_f1", "auc", "roc_auc", "auroc", "bleu", "rouge",
                   "ndcg", "mrr", "recall", "precision", "perplexity", "ppl", "wer", "cer", "score",
                   "metric", "metrics", "evaluate", "compute_metrics", "top1", "top5")
DATA_ATTR_RE = re.compile(r"load|split|dataset|data|loader|sampler|fold|fraction|val_|test_|_val|_test", re.IGNORECASE)
SEED_ATTR_RE = re.compile(r"seed|default_rng|randomstate|prngkey", re.IGNORECASE)

OUTPUT_HOOK_RE = re.compile(r"\batexit\.register\b|\bsys\.excepthook\s*=(?!=)")
# Ending the process from trial code: the evaluator never prints (or writes) its own result,
# so a line the trial printed first is the only score. At module level any exit runs on import.
EARLY_EXIT_RE = re.compile(r"\bos\._exit\(|\bos\.abort\(|\bos\.kill\(\s*os\.getpid\(\)|\bsignal\.raise_signal\("
                           r"|^(raise\s+SystemExit\b|(sys\.)?exit\(|quit\()")
OUTPUT_TAMPER_RE = re.compile(r"\bsys\.(stdout|stderr|__stdout__|__stderr__)(\.write)?\s*=(?!=)"
                              r"|\b(builtins|__builtins__)\s*(\.\s*print|\[\s*[\"']print[\"']\s*\])\s*=(?!=)"
                              r"|\bsetattr\(\s*(builtins|sys)\s*,\s*[\"'](print|stdout|stderr)[\"']"
                              r"|\bredirect_std(out|err)\("
                              # closing or re-pointing file descriptors 1 and 2 hides what the evaluator prints next
                              r"|\bdup2\(|\bos\.closerange\(|\bos\.close\(\s*[12]\s*\)"
                              r"|\bsys\.(stdout|stderr|__stdout__|__stderr__)\.close\(")
SEED_PINNED_RE = re.compile(r"\b(default_rng|RandomState|manual_seed|manual_seed_all|set_seed|seed_everything|PRNGKey"
                            r"|random\.seed|np\.random\.seed|numpy\.random\.seed|tf\.random\.set_seed)\(\s*\d+\s*\)")
SPLIT_RE = re.compile(r"train_test_split|Stratified\w*|stratif|\bGroupKFold\b|\bKFold\b|ShuffleSplit|random_split"
                      r"|\bsplit_indices\b|\bload_splits\b|\bmake_splits?\b"
                      r"|\b(val|valid|validation|dev|test|train|holdout)_?(frac|fraction|ratio|size|split|pct|percent)\b",
                      re.IGNORECASE)
# Indexing validation data (filtering, relabelling) or unpacking a train/validation split.
EVAL_DATA_RE = re.compile(r"\b[xXyY]_?(val|valid|validation|dev|eval)\b\s*\["
                          r"|\b[xX]_?train\w*\s*,[^=]*\b[xXyY]_?(val|valid|validation|dev|test)\b[^=]*=(?!=)")
OUTPUT_CALL_RE = re.compile(r"\b(print|log\w*|info|warning|dump|dumps|write|return|yield|report\w*|emit)\b")
RESAMPLE_RE = re.compile(r"\w*(resampl|oversampl|undersampl|relabel|flip_label|label_noise|drop_hard|hard_example"
                         r"|dedup)\w*\s*\(|\bSMOTE\b", re.IGNORECASE)
TEST_FILE_RE = re.compile(r"""["'][^"']*(^|[/\\_.-]|["'])(test|tests|testing|heldout|held_out|holdout)([_.-]\w*)?"""
                          r"""\.(npz|npy|csv|tsv|jsonl?|parquet|pt|pth|pkl|pickle|h5|hdf5|arrow|tfrecords?|txt)["']""",
                          re.IGNORECASE)
TEST_ACCESS_RE = re.compile(r"""\b(load_test|load_held_?out|test_loader|test_set|testset|test_dataset|test_data"""
                            r"""|test_labels|[xXyY]_test)\b|\b(split|subset)\s*=\s*["'](test|heldout|held_out)["']"""
                            r"""|\[\s*["'](test|heldout|held_out)["']\s*\]""")
METRIC_PARAM_RE = re.compile(r"\b(k|top_?k|at_k|window|window_size|best_of|n_best|average|pos_label|zero_division"
                             r"|ignore_index|threshold|num_thresholds|beam_size|num_beams)\s*=(?!=)")
BEST_OF_RE = re.compile(r"\b(max|np\.max|np\.amax|numpy\.max|best)\s*\([^)]*(score|acc|metric|result|seed|run)",
                        re.IGNORECASE)
BEST_OF_METHOD_RE = re.compile(r"\b\w*(score|acc|metric|result|run|seed)\w*\s*\.max\(\)", re.IGNORECASE)
# A file the trial adds that Python would import instead of a module of the same name
# further down sys.path or beside it: a package wins over a module, an extension over
# source. (__pycache__ is left out: runs write it into the worktree, so honest trials
# can commit it.)
SHADOW_FILE_RE = re.compile(r"^(?:(?P<package>[A-Za-z_]\w*)/__init__\.py"
                            r"|(?P<module>[A-Za-z_]\w*)(?:\.[\w-]+)*\.(?:py|pyc|so|pyd))$")
# Reaching the caller's frames (the evaluator's locals hold the validation labels), the
# interpreter's object graph, or the __main__ module.
INTROSPECTION_RE = re.compile(r"\b_getframe\(|\b_current_frames\(|\bcurrentframe\(|\binspect\.(stack|getouterframes|trace)\("
                              r"|\.f_(back|locals|globals)\b|\bgc\.get_(objects|referrers|referents)\("
                              r"|\b(settrace|setprofile)\(|\btraceback\.(extract_stack|walk_stack)\("
                              r"""|\bsys\.modules\s*\[\s*["']__main__["']|^\s*(import|from)\s+__main__\b""")
HELD_OUT_ATTR_RE = re.compile(r"held_?out|holdout|(^|_)test(_|$)", re.IGNORECASE)
IMPORT_RE = re.compile(r"^\s*import\s+(.+)$|^\s*from\s+([\w.]+)\s+import\s+(.+)$")


@dataclass
class DiffContext:
    """What the rules need to know about the campaign."""

    metric_names: list[str] = field(default_factory=list)
    metrics_files: list[str] = field(default_factory=list)
    evaluator_files: list[str] = field(default_factory=list)
    protected_globs: list[str] = field(default_factory=list)
    held_out_globs: list[str] = field(default_factory=list)
    seed_env: str = "SOTALAB_SEED"
    held_out_env: str = "SOTALAB_HELD_OUT"
    # Top-level modules the evaluator's own code imports (read from the baseline's protected files).
    evaluator_imports: frozenset[str] = frozenset()
    # The repository's own top-level modules (the trial's code, not a library).
    local_modules: frozenset[str] = frozenset()

    @classmethod
    def for_campaign(cls, campaign, evaluator_imports: frozenset[str] = frozenset(),
                     local_modules: frozenset[str] = frozenset()) -> "DiffContext":
        objective, evaluator = campaign.objective, campaign.evaluator
        names = [objective.metric, *objective.secondary, *(m.name for m in evaluator.metrics)]
        files = [m.json_file for m in evaluator.metrics if m.json_file]
        scripts = [a for a in [*(evaluator.command or []), *(evaluator.predict or []), *(evaluator.score or [])] if re.search(r"\.(py|sh|R|jl|lua)$", a)]
        return cls(metric_names=list(dict.fromkeys(names)), metrics_files=list(dict.fromkeys(files)),
                   evaluator_files=scripts, protected_globs=campaign.protected_paths,
                   held_out_globs=campaign.held_out_paths, seed_env=evaluator.seed_env,
                   evaluator_imports=evaluator_imports, local_modules=local_modules)

    @cached_property
    def protected_modules(self) -> dict[str, set[str]]:
        """Python modules of the evaluator: directory -> module names (``data.py`` -> "" -> {"data"})."""
        modules: dict[str, set[str]] = {}
        for name in (*self.protected_globs, *self.evaluator_files):
            path = PurePosixPath(name)
            if path.suffix == ".py" and not re.search(r"[*?\[]", name):
                parent = "" if str(path.parent) == "." else str(path.parent)
                modules.setdefault(parent, set()).add(path.stem)
        return modules

    def shadowed_module(self, path: str) -> str | None:
        """The evaluator's module a newly added file at ``path`` would be imported in place of."""
        roots = {"", *self.protected_modules}
        for root in roots:
            prefix = f"{root}/" if root else ""
            if not path.startswith(prefix):
                continue
            match = SHADOW_FILE_RE.match(path[len(prefix):])
            name = match and (match.group("package") or match.group("module"))
            if name and (name in self.protected_modules.get(root, set()) or name in self.evaluator_imports):
                return name
        return None

    @cached_property
    def protected_attr_re(self) -> re.Pattern | None:
        """Trial code reaching into an evaluator module for its seeds or its test data."""
        names = sorted({m for ms in self.protected_modules.values() for m in ms})
        if not names:
            return None
        alias = "|".join(re.escape(n) for n in names)
        return re.compile(rf"\b(?:{alias})\s*\.\s*(?P<attr>\w+)|^\s*from\s+(?:{alias})\s+import\s+(?P<names>.+)$")

    @cached_property
    def metric_word(self) -> str:
        names = sorted({n.lower() for n in (*self.metric_names, *GENERIC_METRICS) if n}, key=len, reverse=True)
        return "(?:" + "|".join(re.escape(n) for n in names) + ")"

    @cached_property
    def metric_attr_re(self) -> re.Pattern:
        return re.compile(rf"(^|_){self.metric_word}($|_)|metric|score|eval", re.IGNORECASE)

    @cached_property
    def literal_re(self) -> re.Pattern:
        word = self.metric_word
        number = r"(?:-?\d*\.\d+(?:[eE]-?\d+)?|\b[01]\b)(?![\w}])"
        return re.compile(
            rf"""["'][^"']*(?<![A-Za-z0-9{{]){word}\s*[=:]\s*(?:{number})"""          # "accuracy=0.97" inside a string
            rf"""|["']{word}["']\s*[:,]\s*(?:{number})""",             # {"accuracy": 0.97} / ("accuracy", 0.97)
            re.IGNORECASE)

    @cached_property
    def literal_kwarg_re(self) -> re.Pattern:
        """print(accuracy=0.97) / dict(accuracy=1): only counted on output lines, since
        the same shape is an ordinary default in a signature."""
        number = r"(?:-?\d*\.\d+(?:[eE]-?\d+)?|\b[01]\b)(?![\w}])"
        return re.compile(rf"\b{self.metric_word}\s*=\s*(?:{number})\s*[,)]", re.IGNORECASE)

    @cached_property
    def metric_line_re(self) -> re.Pattern:
        return re.compile(rf"(?<![A-Za-z0-9]){self.metric_word}(?![A-Za-z0-9])|hits?@|@\s*k\b|metric|score",
                          re.IGNORECASE)

    @cached_property
    def held_out_markers(self) -> list[str]:
        """Literal path pieces of the held-out globs ("heldout/**" -> "heldout")."""
        markers = set()
        for glob in self.held_out_globs:
            literal = re.split(r"[*?\[]", glob, maxsplit=1)[0].strip("/")
            if literal:
                markers.add(literal)
                markers.add(PurePosixPath(literal).name)
        return sorted(m for m in markers if len(m) >= 3)

    @cached_property
    def held_out_re(self) -> re.Pattern | None:
        parts = [re.escape(m) for m in self.held_out_markers] + [re.escape(self.held_out_env)]
        return re.compile(r"""["'][^"']*(""" + "|".join(parts) + r""")[^"']*["']|\b""" + re.escape(self.held_out_env)
                          + r"\b")

    @cached_property
    def seed_env_re(self) -> re.Pattern:
        env = re.escape(self.seed_env)
        return re.compile(rf"""environ\s*\[\s*["']{env}["']\s*\]\s*=(?!=)|putenv\(\s*["']{env}["']"""
                          rf"""|environ\.(setdefault|update)\([^)]*{env}""")

    @cached_property
    def metrics_file_re(self) -> re.Pattern | None:
        if not self.metrics_files:
            return None
        names = {PurePosixPath(f).name for f in self.metrics_files}
        return re.compile(r"""["'][^"']*(""" + "|".join(re.escape(n) for n in names) + r""")["']""")


def _is_comment(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith(("#", "//", "--"))


TRIPLE_QUOTES = re.compile(r"\"\"\"|\'\'\'")
DOCSTRING_START = re.compile(r"^[rRbBuUfF]{0,2}(\"\"\"|\'\'\')")


def prose_lines(lines: list[tuple[int, str]]) -> set[int]:
    """Line numbers inside triple-quoted strings (docstrings, doctests), in a best-effort
    scan of the lines given in order; a gap in the numbering starts a fresh scan."""
    prose, inside, previous = set(), False, None
    for number, text in sorted(lines):
        if previous is not None and number != previous + 1:
            inside = False
        previous = number
        starts_inside = inside
        if len(TRIPLE_QUOTES.findall(text)) % 2:
            inside = not inside
        if starts_inside or DOCSTRING_START.match(text.strip()):
            prose.add(number)
    return prose


def _imported_modules(lines: list[str]) -> dict[str, str]:
    """Names a Python file binds to modules, each with the top-level module it comes from:
    ``import a.b as c`` -> c: a; ``import a`` -> a: a; ``from a import b`` -> b: a (b may
    be a submodule; rebinding its attributes patches it)."""
    names: dict[str, str] = {}
    for text in lines:
        match = IMPORT_RE.match(text)
        if not match:
            continue
        if match.group(1):
            for item in match.group(1).split(","):
                item = item.strip().split("#")[0].strip()
                if " as " in item:
                    names[item.split(" as ")[1].strip()] = item.split(" as ")[0].strip().split(".")[0]
                elif item:
                    names[item.split(".")[0]] = item.split(".")[0]
        else:
            top = match.group(2).split(".")[0]
            names[top] = top
            for item in match.group(3).strip("() ").split(","):
                item = item.strip().split("#")[0].strip()
                if item and item != "*":
                    names[item.split(" as ")[-1].strip()] = top
    return names


def top_level_imports(text: str) -> set[str]:
    """Top-level module names a Python file imports (``from a.b import c`` -> a)."""
    names = set()
    for line in text.splitlines():
        match = IMPORT_RE.match(line)
        if match and match.group(1):
            names.update(item.strip().split(" as ")[0].split(".")[0] for item in match.group(1).split("#")[0].split(","))
        elif match and not match.group(2).startswith("."):
            names.add(match.group(2).split(".")[0])
    return {n for n in names if n.isidentifier()}


def _patch_re(modules: set[str]) -> re.Pattern | None:
    modules = {m for m in modules if m.isidentifier()}  # "from . import x" binds no module name "."
    if not modules:
        return None
    alias = "|".join(re.escape(m) for m in sorted(modules))
    return re.compile(rf"^\s*(?:{alias})((?:\.\w+)*)\.(\w+)\s*(?:=(?!=)|[-+*/]=)"
                      rf"""|\bsetattr\(\s*(?:{alias})[\w.]*\s*,\s*(?:["'](\w+)["'])?"""
                      rf"""|\bsys\.modules\s*\[\s*["']([\w.]+)["']\s*\]\s*=(?!=)"""
                      # the module's namespace itself: vars(m)["accuracy"] = ..., m.__dict__.update(accuracy=...)
                      rf"""|(?:\bvars\(\s*(?:{alias})\s*\)|\b(?:{alias})\.__dict__)"""
                      rf"""(?:\s*\[\s*["'](\w+)["']\s*\]\s*=(?!=)|(\s*\[[^\]]*\]\s*=(?!=).*|\.(?:update|setdefault)\(.*))""")


PATCH_RULE_ORDER = ["seed-override", "monkeypatch-metric", "monkeypatch-data", "module-patch"]


def _classify_patch(chain: str, attr: str, ctx: DiffContext) -> str:
    """``chain``: the patched object's dotted path (``metrics.accuracy`` when its
    ``__code__`` is swapped), ``attr``: the attribute written."""
    target = f"{chain}.{attr}"
    if SEED_ATTR_RE.search(target):
        return "seed-override"
    names = [n for n in target.split(".") if n and not n.startswith("__")]
    if any(ctx.metric_attr_re.search(n) for n in names):
        return "monkeypatch-metric"
    if any(DATA_ATTR_RE.search(n) for n in names):
        return "monkeypatch-data"
    return "module-patch"


PATCHED_ALIAS_RE = re.compile(r"\s*(?:setattr\(\s*|vars\(\s*)?(\w+)")
LITERAL_VALUE_RE = re.compile(r"""=\s*(True|False|None|-?[\d.]+(e-?\d+)?|["'][^"']*["'])\s*(#.*)?$""")


def _is_dependency_swap(text: str, module: str | None, ctx: DiffContext) -> bool:
    """An attribute of the evaluator's own modules, or a function (not a setting) of a
    library the evaluator imports, is replaced: the evaluator then runs the trial's
    version (np.mean = ..., data.N_TRAINVAL = 500)."""
    if module and any(module in names for names in ctx.protected_modules.values()):
        return True  # the evaluator's own module: settings count as much as functions
    return bool(module and module in ctx.evaluator_imports and module not in ctx.local_modules
                and not LITERAL_VALUE_RE.search(text))


class _Findings:
    def __init__(self):
        self.items: list[Evidence] = []
        self._seen: set[tuple] = set()

    def add(self, rule_id: str, file: str, line: int | None, text: str | None, detail: str) -> None:
        key = (rule_id, file, line)
        if key in self._seen:
            return
        self._seen.add(key)
        value = None if text is None else text.strip()[:200]
        self.items.append(Evidence(rule=rule_id, file=file, line=line, value=value, detail=detail))


def scan(diff_text: str, ctx: DiffContext, sources: dict[str, str] | None = None) -> list[Evidence]:
    """Every rule finding in ``diff_text``. ``sources`` (path -> the trial's full file
    text) lets the import-aware rules see imports outside the diff's hunks."""
    findings = _Findings()
    for fd in diffparse.parse(diff_text):
        _scan_file(fd, ctx, (sources or {}).get(fd.path), findings)
    return findings.items


def _scan_file(fd: diffparse.FileDiff, ctx: DiffContext, source: str | None, out: _Findings) -> None:
    path = fd.path
    suffix = PurePosixPath(path).suffix.lower()
    line_of_change = fd.first_line
    is_eval_file = (path in ctx.evaluator_files or (fd.old_path or "") in ctx.evaluator_files
                    or matches(path, ctx.protected_globs) or bool(EVAL_FILE_RE.search(path)))
    if is_eval_file and (fd.added or fd.removed or fd.binary or fd.created or fd.deleted):
        out.add("eval-code-edit", path, line_of_change, None,
                "evaluation or metric code changed" + (" (deleted)" if fd.deleted else ""))
    shadowed = ctx.shadowed_module(path) if fd.created else None
    if shadowed:
        out.add("module-shadow", path, line_of_change, None,
                f"added file is imported in place of the evaluator's module {shadowed!r}")
    if fd.binary or suffix in PROSE_SUFFIXES:
        return
    is_config = suffix in CONFIG_SUFFIXES
    if suffix == ".py":
        new_lines = list(enumerate(source.splitlines(), start=1)) if source is not None else fd.context + fd.added
        skip_new, skip_old = prose_lines(new_lines), prose_lines(fd.removed)
    else:
        skip_new = skip_old = set()
    added = [(n, t) for n, t in fd.added if not _is_comment(t) and n not in skip_new]
    removed = [(n, t) for n, t in fd.removed if not _is_comment(t) and n not in skip_old]

    # Rules on what the trial's code now does (added lines).
    patch_re = None
    if not is_config:
        lines = source.splitlines() if source is not None else [t for _, t in fd.context + fd.added]
        imports = _imported_modules(lines)
        patch_re = _patch_re(set(imports))
    for number, text in added:
        if ctx.literal_re.search(text) or (OUTPUT_CALL_RE.search(text) and ctx.literal_kwarg_re.search(text)):
            out.add("metric-literal", path, number, text, "a literal metric value is printed, returned or written")
        if ctx.metrics_file_re and ctx.metrics_file_re.search(text):
            out.add("metrics-file-write", path, number, text, "touches a file the evaluator reads metrics from")
        if ctx.held_out_re.search(text) or TEST_FILE_RE.search(text) or TEST_ACCESS_RE.search(text):
            out.add("held-out-read", path, number, text, "reads held-out or test data")
        if ctx.seed_env_re.search(text):
            out.add("seed-override", path, number, text, f"overrides the evaluator's seed variable {ctx.seed_env}")
        if SEED_PINNED_RE.search(text):
            out.add("seed-pinned", path, number, text, "seeds a generator with a literal")
        if SPLIT_RE.search(text) or EVAL_DATA_RE.search(text):
            out.add("split-change", path, number, text, "changes split construction or the evaluation data")
        if RESAMPLE_RE.search(text):
            out.add("data-resample", path, number, text, "filters, relabels or resamples data")
        if (METRIC_PARAM_RE.search(text) and ctx.metric_line_re.search(text)) or BEST_OF_RE.search(text) \
                or BEST_OF_METHOD_RE.search(text):
            out.add("metric-param-change", path, number, text, "changes a metric parameter or takes a best-of-N")
        if not is_eval_file and ctx.protected_attr_re:
            _scan_evaluator_names(ctx.protected_attr_re.finditer(text), path, number, text, out)
        if INTROSPECTION_RE.search(text):
            out.add("frame-introspection", path, number, text, "reads its callers' frames or the interpreter's objects")
        if OUTPUT_TAMPER_RE.search(text):
            out.add("output-tamper", path, number, text, "replaces the output the evaluator prints to")
        if EARLY_EXIT_RE.search(text):
            out.add("early-exit", path, number, text, "ends the process before the evaluator reports")
        if OUTPUT_HOOK_RE.search(text):
            out.add("output-hook", path, number, text, "runs at interpreter exit or on an uncaught exception")
        if patch_re:
            match = patch_re.search(text)
            if match:
                if match.group(4):
                    rule = "monkeypatch-metric" if ctx.metric_attr_re.search(match.group(4)) else "monkeypatch-data" \
                        if DATA_ATTR_RE.search(match.group(4)) else "module-patch"
                    detail = f"replaces module {match.group(4)} in sys.modules"
                else:
                    alias = PATCHED_ALIAS_RE.match(match.group(0)).group(1)
                    owner = f"{imports.get(alias, alias)}.{alias}"  # the module's own name counts too
                    attr = match.group(2) or match.group(3) or match.group(5)
                    if attr:
                        rule = _classify_patch(owner + (match.group(1) or ""), attr, ctx)
                        detail = f"reassigns {attr} on an imported module"
                    else:  # names written into the module's namespace: the worst one counts
                        # namespace writes, or setattr with a computed name: the rest of the line
                        rest = match.group(6) if match.group(6) is not None else text[match.end():]
                        found = [_classify_patch(owner, name, ctx) for name in re.findall(r"\w+", rest)]
                        rule = min(found, key=PATCH_RULE_ORDER.index) if found else "module-patch"
                        detail = "writes into an imported module's namespace"
                    if rule == "module-patch" and _is_dependency_swap(text, imports.get(alias), ctx):
                        rule, detail = "monkeypatch-dependency", f"replaces {attr or 'a name'} in {imports[alias]}, " \
                                                                 "which the evaluator imports"
                out.add(rule, path, number, text, detail)
    # Removing split or metric-parameter code changes them as much as adding it.
    for number, text in removed:
        if SPLIT_RE.search(text):
            out.add("split-change", path, number, text, "removes split construction code (line in the baseline)")
        if METRIC_PARAM_RE.search(text) and ctx.metric_line_re.search(text):
            out.add("metric-param-change", path, number, text, "removes a metric parameter (line in the baseline)")


def _scan_evaluator_names(matches, path: str, number: int, text: str, out: _Findings) -> None:
    """Trial code naming an evaluator module's test data or seeds (``data.HELDOUT_SEED``,
    ``from data import load_test``) can rebuild the held-out or validation data."""
    names = [name for m in matches
             for name in ([m.group("attr")] if m.group("attr") else re.findall(r"\w+", m.group("names")))]
    if any(HELD_OUT_ATTR_RE.search(n) for n in names):
        out.add("held-out-read", path, number, text, "names the evaluator's test or held-out data")
    if any("seed" in n.lower() for n in names):
        out.add("eval-data-rebuild", path, number, text, "reads a seed of the evaluator's data")


def check(diff_text: str, ctx: DiffContext, sources: dict[str, str] | None = None) -> CheckResult:
    findings = scan(diff_text, ctx, sources)
    failing = [f for f in findings if RULES[f.rule].severity == "fail"]
    rules = sorted({f.rule for f in findings})
    files = len(diffparse.parse(diff_text)) if not findings else len({f.file for f in findings})
    return CheckResult.of(
        "diff_rules", findings, fail=failing,
        ok=f"no rule finding in the diff ({files} files changed)",
        bad=f"{len(findings)} finding(s): {', '.join(rules)}",
        data={"findings": len(findings), "rules": rules})
