"""Check 3: static rules on the trial's diff against the baseline.

Each finding names a rule from ``rules.RULES``. The rules are data: ``FILE_RULES`` judge
a changed file as a whole (its path, whether it is binary, bytecode or data),
``LINE_RULES`` one line each (added lines of code and config files; a few read the
removed ones), and ``LINE_SCANNERS`` the lines that need the file's imports. Comments
and prose files are skipped so that describing a change never trips a rule.

These rules recognise patterns; they are the weaker half of the audit. At the isolated
level the scorer never runs trial code, and at the in_process level the runtime
evidence (``runtime.py``) records what the code did, names built at run time included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
# Code that is not tracked source: strings run as code, code objects built from data, a
# module loaded from a path of the trial's choosing (a stdlib module re-exported by a shadow).
DYNAMIC_CODE_RE = re.compile(r"(?<![\w.])(?<!def )(exec|eval|compile|execfile)\s*\(|\bmarshal\.loads?\s*\("
                             r"|\btypes\.(CodeType|FunctionType)\s*\(|\brunpy\.run_(path|module)\s*\("
                             r"|\bspec_from_file_location\s*\(|\bSourceFileLoader\s*\(|\bSourcelessFileLoader\s*\(")
# Names built at run time: imports by computed name, modules fetched from sys.modules by a
# computed key or patched through it, namespaces written through vars().
DYNAMIC_NAME_RE = re.compile(r"(?<![\w.])__import__\s*\("
                             r"""|\bimport_module\s*\(\s*(?![rbuRBU]?["'][\w.]+["']\s*[,)])"""
                             r"""|\bsys\.modules\s*\[\s*(?![rbuRBU]?["'][\w.]+["']\s*\])|\bsys\.modules\.get\s*\("""
                             r"|\bsys\.modules\s*\[[^\]]*\]\s*\.\s*\w+\s*=(?!=)"
                             r"|\bvars\(\s*(?!self\b|cls\b)\w+\s*\)\s*(\[[^\]]*\]\s*=(?!=)|\.update\()")
# builtins are every module's namespace: honest code has no reason to name them.
BUILTINS_RE = re.compile(r"\b__builtins__\b|\bbuiltins\.\w+\s*=(?!=)|\bsetattr\(\s*builtins\b"
                         r"|\bvars\(\s*builtins\s*\)|\bbuiltins\.__dict__\b")
SPAWN_RE = re.compile(r"\bsubprocess\.\w+\s*\(|\bos\.(system|popen|exec\w*|spawn\w*|fork|forkpty|posix_spawn\w*)\s*\(")
NATIVE_RE = re.compile(r"\bctypes\b|\bcffi\b|\bdlopen\b|\bCDLL\s*\(")
# Files Python runs at start-up when they are found on sys.path or in site-packages.
STARTUP_FILES = frozenset({"sitecustomize.py", "usercustomize.py"})
BYTECODE_SUFFIXES = frozenset({".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib"})
DATA_SUFFIXES = frozenset({".csv", ".tsv", ".jsonl", ".ndjson", ".npy", ".npz", ".pkl", ".pickle", ".pt", ".pth",
                           ".ckpt", ".bin", ".h5", ".hdf5", ".parquet", ".arrow", ".feather", ".tfrecord",
                           ".safetensors", ".joblib", ".msgpack", ".dat", ".arff", ".gz", ".zip", ".tar", ".bz2",
                           ".xz", ".7z", ".db", ".sqlite", ".mat"})
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
    # Where the campaign lets a trial add binary or data files (campaign.data_paths).
    data_globs: list[str] = field(default_factory=list)

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
                   evaluator_imports=evaluator_imports, local_modules=local_modules,
                   data_globs=list(campaign.data_paths))

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


# --- what the rules read --------------------------------------------------------------------

@dataclass(frozen=True)
class FileScope:
    """What the rules know about one changed file of the diff."""

    fd: diffparse.FileDiff
    ctx: DiffContext
    is_eval_file: bool          # evaluator code: the command's scripts, protected files, eval*/metric* names
    is_config: bool
    imports: dict[str, str]     # names the file binds to modules -> the top-level module
    patch_re: re.Pattern | None  # assignments into the file's imported modules

    @property
    def path(self) -> str:
        return self.fd.path

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.fd.path).suffix.lower()

    @cached_property
    def draws_on_evaluator_data(self) -> bool:
        """The file is evaluator code or imports one of the evaluator's modules: only then
        can its split code change the data the evaluator scores on (an internal dev split
        of the training data the trial was handed changes nothing the evaluator sees)."""
        evaluator_modules = {m for ms in self.ctx.protected_modules.values() for m in ms}
        return self.is_eval_file or bool(evaluator_modules & set(self.imports.values()))


# A rule on one line (added lines, or with ``removed`` the baseline's lines the diff takes out).
@dataclass(frozen=True)
class LineRule:
    rule: str
    detail: str
    fires: Callable[[str, FileScope], bool]
    removed: bool = False


# A rule on the changed file as a whole (its path, whether git reads it as binary).
@dataclass(frozen=True)
class FileRule:
    rule: str
    fires: Callable[[FileScope], str | None]  # the detail when the rule fires


def _search(pattern: re.Pattern) -> Callable[[str, FileScope], bool]:
    return lambda text, scope: bool(pattern.search(text))


def _metric_literal(text: str, scope: FileScope) -> bool:
    ctx = scope.ctx
    return bool(ctx.literal_re.search(text) or (OUTPUT_CALL_RE.search(text) and ctx.literal_kwarg_re.search(text)))


def _held_out_read(text: str, scope: FileScope) -> bool:
    return bool(scope.ctx.held_out_re.search(text) or TEST_FILE_RE.search(text) or TEST_ACCESS_RE.search(text))


def _split_change(text: str, scope: FileScope) -> bool:
    names_evaluator = bool(scope.ctx.protected_attr_re and scope.ctx.protected_attr_re.search(text))
    return (scope.draws_on_evaluator_data or names_evaluator) and bool(SPLIT_RE.search(text) or EVAL_DATA_RE.search(text))


def _metric_param(text: str, scope: FileScope) -> bool:
    return bool(METRIC_PARAM_RE.search(text) and scope.ctx.metric_line_re.search(text))


LINE_RULES: tuple[LineRule, ...] = (
    LineRule("metric-literal", "a literal metric value is printed, returned or written", _metric_literal),
    LineRule("metrics-file-write", "touches a file the evaluator reads metrics from",
             lambda t, s: bool(s.ctx.metrics_file_re and s.ctx.metrics_file_re.search(t))),
    LineRule("held-out-read", "reads held-out or test data", _held_out_read),
    LineRule("seed-override", "overrides the evaluator's seed variable", lambda t, s: bool(s.ctx.seed_env_re.search(t))),
    LineRule("seed-pinned", "seeds a generator with a literal", _search(SEED_PINNED_RE)),
    LineRule("split-change", "changes split construction or the evaluation data", _split_change),
    LineRule("data-resample", "filters, relabels or resamples data", _search(RESAMPLE_RE)),
    LineRule("metric-param-change", "changes a metric parameter or takes a best-of-N",
             lambda t, s: _metric_param(t, s) or bool(BEST_OF_RE.search(t) or BEST_OF_METHOD_RE.search(t))),
    LineRule("frame-introspection", "reads its callers' frames or the interpreter's objects", _search(INTROSPECTION_RE)),
    LineRule("output-tamper", "replaces the output the evaluator prints to", _search(OUTPUT_TAMPER_RE)),
    LineRule("early-exit", "ends the process before the evaluator reports", _search(EARLY_EXIT_RE)),
    LineRule("output-hook", "runs at interpreter exit or on an uncaught exception", _search(OUTPUT_HOOK_RE)),
    LineRule("dynamic-code", "runs or loads code that is not tracked source (exec, eval, compile, marshal, "
             "a module loaded from a path)", _search(DYNAMIC_CODE_RE)),
    LineRule("dynamic-name", "reaches a module or writes a namespace through a name built at run time",
             _search(DYNAMIC_NAME_RE)),
    LineRule("builtins-patch", "touches builtins, which every module (the evaluator's too) reads",
             _search(BUILTINS_RE)),
    LineRule("process-spawn", "starts another process", _search(SPAWN_RE)),
    LineRule("native-code", "loads native code, which no check can read", _search(NATIVE_RE)),
    # Removing split or metric-parameter code changes them as much as adding it.
    LineRule("split-change", "removes split construction code (line in the baseline)", _search(SPLIT_RE), removed=True),
    LineRule("metric-param-change", "removes a metric parameter (line in the baseline)", _metric_param, removed=True),
)


def _eval_code_edit(scope: FileScope) -> str | None:
    fd = scope.fd
    if scope.is_eval_file and (fd.added or fd.removed or fd.binary or fd.created or fd.deleted):
        return "evaluation or metric code changed" + (" (deleted)" if fd.deleted else "")
    return None


def _module_shadow(scope: FileScope) -> str | None:
    shadowed = scope.ctx.shadowed_module(scope.path) if scope.fd.created else None
    return f"added file is imported in place of the evaluator's module {shadowed!r}" if shadowed else None


def _startup_file(scope: FileScope) -> str | None:
    name = PurePosixPath(scope.path).name
    if scope.fd.deleted:
        return None
    if name in STARTUP_FILES:
        return f"{name} runs in every interpreter that finds it on sys.path, before any other code"
    if scope.suffix == ".pth" and not scope.fd.binary and any(t.lstrip().startswith("import") for _, t in scope.fd.added):
        return "a .pth file's import lines run when Python starts, wherever site-packages picks it up"
    return None


def _is_data(scope: FileScope) -> bool:
    return matches(scope.path, scope.ctx.data_globs)


def _bytecode_file(scope: FileScope) -> str | None:
    if scope.fd.deleted or not (scope.suffix in BYTECODE_SUFFIXES or "__pycache__" in PurePosixPath(scope.path).parts):
        return None
    return "compiled code whose source nobody reviews (evaluation exports leave it out)"


def _binary_file(scope: FileScope) -> str | None:
    if scope.fd.deleted or not scope.fd.binary or _bytecode_file(scope) or _is_data(scope):
        return None
    return "a binary file no rule can read (declare data with the campaign's data_paths)"


def _data_file(scope: FileScope) -> str | None:
    if scope.fd.deleted or scope.fd.binary or scope.suffix not in DATA_SUFFIXES or _is_data(scope):
        return None
    return "a data file in the trial's code (declare data with the campaign's data_paths)"


FILE_RULES: tuple[FileRule, ...] = (
    FileRule("eval-code-edit", _eval_code_edit),
    FileRule("module-shadow", _module_shadow),
    FileRule("startup-file", _startup_file),
    FileRule("bytecode-file", _bytecode_file),
    FileRule("binary-file", _binary_file),
    FileRule("data-file", _data_file),
)


def _evaluator_names(text: str, scope: FileScope) -> list[tuple[str, str]]:
    """Trial code naming an evaluator module's test data or seeds (``data.HELDOUT_SEED``,
    ``from data import load_test``) can rebuild the held-out or validation data."""
    if scope.is_eval_file or not scope.ctx.protected_attr_re:
        return []
    names = [name for m in scope.ctx.protected_attr_re.finditer(text)
             for name in ([m.group("attr")] if m.group("attr") else re.findall(r"\w+", m.group("names")))]
    found = []
    if any(HELD_OUT_ATTR_RE.search(n) for n in names):
        found.append(("held-out-read", "names the evaluator's test or held-out data"))
    if any("seed" in n.lower() for n in names):
        found.append(("eval-data-rebuild", "reads a seed of the evaluator's data"))
    return found


def _module_patch(text: str, scope: FileScope) -> list[tuple[str, str]]:
    """An assignment into one of the file's imported modules, named by what it replaces."""
    match = scope.patch_re.search(text) if scope.patch_re else None
    if not match:
        return []
    ctx, imports = scope.ctx, scope.imports
    if match.group(4):
        rule = "monkeypatch-metric" if ctx.metric_attr_re.search(match.group(4)) else "monkeypatch-data" \
            if DATA_ATTR_RE.search(match.group(4)) else "module-patch"
        return [(rule, f"replaces module {match.group(4)} in sys.modules")]
    alias = PATCHED_ALIAS_RE.match(match.group(0)).group(1)
    owner = f"{imports.get(alias, alias)}.{alias}"  # the module's own name counts too
    attr = match.group(2) or match.group(3) or match.group(5)
    if attr:
        rule = _classify_patch(owner + (match.group(1) or ""), attr, ctx)
        detail = f"reassigns {attr} on an imported module"
    else:  # names written into the module's namespace, or setattr with a computed name: the worst one counts
        rest = match.group(6) if match.group(6) is not None else text[match.end():]
        found = [_classify_patch(owner, name, ctx) for name in re.findall(r"\w+", rest)]
        rule = min(found, key=PATCH_RULE_ORDER.index) if found else "module-patch"
        detail = "writes into an imported module's namespace"
    if rule == "module-patch" and _is_dependency_swap(text, imports.get(alias), ctx):
        rule, detail = "monkeypatch-dependency", f"replaces {attr or 'a name'} in {imports[alias]}, which the evaluator imports"
    return [(rule, detail)]


# Rules that read a line for several things at once and name each finding themselves.
LINE_SCANNERS: tuple[Callable[[str, FileScope], list[tuple[str, str]]], ...] = (_evaluator_names, _module_patch)


def scan(diff_text: str, ctx: DiffContext, sources: dict[str, str] | None = None) -> list[Evidence]:
    """Every rule finding in ``diff_text``. ``sources`` (path -> the trial's full file
    text) lets the import-aware rules see imports outside the diff's hunks."""
    findings = _Findings()
    for fd in diffparse.parse(diff_text):
        _scan_file(fd, ctx, (sources or {}).get(fd.path), findings)
    return findings.items


def _scope(fd: diffparse.FileDiff, ctx: DiffContext, source: str | None) -> FileScope:
    suffix = PurePosixPath(fd.path).suffix.lower()
    is_eval_file = (fd.path in ctx.evaluator_files or (fd.old_path or "") in ctx.evaluator_files
                    or matches(fd.path, ctx.protected_globs) or bool(EVAL_FILE_RE.search(fd.path)))
    is_config = suffix in CONFIG_SUFFIXES
    imports, patch_re = {}, None
    if not is_config and not fd.binary:
        lines = source.splitlines() if source is not None else [t for _, t in fd.context + fd.added]
        imports = _imported_modules(lines)
        patch_re = _patch_re(set(imports))
    return FileScope(fd=fd, ctx=ctx, is_eval_file=is_eval_file, is_config=is_config, imports=imports,
                     patch_re=patch_re)


def _scan_file(fd: diffparse.FileDiff, ctx: DiffContext, source: str | None, out: _Findings) -> None:
    scope = _scope(fd, ctx, source)
    for file_rule in FILE_RULES:
        detail = file_rule.fires(scope)
        if detail:
            out.add(file_rule.rule, fd.path, fd.first_line, None, detail)
    if fd.binary or scope.suffix in PROSE_SUFFIXES:
        return
    if scope.suffix == ".py":
        new_lines = list(enumerate(source.splitlines(), start=1)) if source is not None else fd.context + fd.added
        skip_new, skip_old = prose_lines(new_lines), prose_lines(fd.removed)
    else:
        skip_new = skip_old = set()
    lines = {False: [(n, t) for n, t in fd.added if not _is_comment(t) and n not in skip_new],
             True: [(n, t) for n, t in fd.removed if not _is_comment(t) and n not in skip_old]}
    for line_rule in LINE_RULES:
        for number, text in lines[line_rule.removed]:
            if line_rule.fires(text, scope):
                out.add(line_rule.rule, fd.path, number, text, line_rule.detail)
    for scanner in LINE_SCANNERS:
        for number, text in lines[False]:
            for rule_id, detail in scanner(text, scope):
                out.add(rule_id, fd.path, number, text, detail)


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
