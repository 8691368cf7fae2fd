"""Check 3 (static diff rules): each rule fires on what it names and stays quiet on
honest code; the bundled tinynet patches get exactly the findings they should."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sotalab.tools.audit import diff_rules, diffparse
from sotalab.tools.audit.rules import RULES
from sotalab.tools.campaigns import CampaignCreate

REPO = Path(__file__).resolve().parent.parent
TINYNET = REPO / "examples" / "tinynet"


def tinynet_context() -> diff_rules.DiffContext:
    spec = CampaignCreate.model_validate(json.loads((TINYNET / "campaign.json").read_text()))
    return diff_rules.DiffContext.for_campaign(spec)


CTX = tinynet_context()


def added_file_diff(path: str, body: str) -> str:
    lines = body.strip("\n").splitlines()
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines))


def change_diff(path: str, old: str, new: str, start: int = 10) -> str:
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -{start},1 +{start},1 @@\n"
            f"-{old}\n+{new}\n")


def rules_in(diff: str, sources=None) -> set[str]:
    return {f.rule for f in diff_rules.scan(diff, CTX, sources)}


def test_context_comes_from_the_campaign():
    assert set(CTX.metric_names) >= {"accuracy", "macro_f1", "nll", "params"}
    assert CTX.metrics_files == ["metrics.json"]
    assert CTX.evaluator_files == ["predict.py", "score.py"]
    assert "heldout" in CTX.held_out_markers


def test_parse_tracks_line_numbers_renames_and_deletions():
    diff = (
        "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n"
        "@@ -3,4 +3,5 @@ def fit():\n context\n-old line\n+new line\n+-- a removed-looking added line\n more\n"
        "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n"
        "@@ -1,1 +0,0 @@\n-x = 1\n"
    )
    first, second = diffparse.parse(diff)
    assert first.path == "train.py"
    assert first.added == [(4, "new line"), (5, "-- a removed-looking added line")]
    assert first.removed == [(4, "old line")]
    assert second.deleted and second.path == "gone.py" and second.removed == [(1, "x = 1")]


@pytest.mark.parametrize("path", ["evaluate.py", "metrics.py", "data.py", "src/eval_utils.py", "scoring.py"])
def test_eval_code_edit_on_evaluator_protected_and_metric_files(path):
    assert "eval-code-edit" in rules_in(change_diff(path, "a = 1", "a = 2"))


def test_eval_code_edit_not_on_training_code():
    assert "eval-code-edit" not in rules_in(change_diff("train.py", "a = 1", "a = 2"))
    assert "eval-code-edit" not in rules_in(change_diff("src/model.py", "a = 1", "a = 2"))


@pytest.mark.parametrize("line", [
    'print("accuracy=0.9731")',
    "print(f'accuracy: 0.97')",
    'json.dump({"accuracy": 0.99}, handle)',
    "return dict(macro_f1=1.0)",
    'logger.info("val_accuracy=.95")',
])
def test_metric_literal(line):
    assert "metric-literal" in rules_in(change_diff("train.py", "pass", line))


@pytest.mark.parametrize("line", [
    'print(f"accuracy={acc:.4f}")',
    'print("epoch", epoch, "loss", 0.5 * loss)',
    "LEARNING_RATE = 0.005",
    'config = {"lr": 0.01, "momentum": 0.9}',
])
def test_metric_literal_quiet_on_computed_values_and_hyperparameters(line):
    assert "metric-literal" not in rules_in(change_diff("train.py", "pass", line))


def test_metrics_file_write():
    assert "metrics-file-write" in rules_in(change_diff("train.py", "pass", 'open("metrics.json", "w").write(x)'))
    assert "metrics-file-write" not in rules_in(change_diff("train.py", "pass", 'open("train_log.json", "w")'))


MONKEYPATCH = """
import metrics
import numpy as np
import data as d
metrics.accuracy = lambda y, p: 1.0
d.load_splits = my_splits
np.random.seed = lambda s: None
setattr(metrics, "macro_f1", fake)
np.set_printoptions(precision=3)
model.mean = x.mean(axis=0)
"""


def test_monkeypatch_rules_classify_the_attribute():
    findings = {(f.line, f.rule) for f in diff_rules.scan(added_file_diff("train.py", MONKEYPATCH), CTX)}
    assert (4, "monkeypatch-metric") in findings
    assert (5, "monkeypatch-data") in findings
    assert (6, "seed-override") in findings
    assert (7, "monkeypatch-metric") in findings
    assert not {line for line, _ in findings} & {8, 9}  # calls and attributes of local objects are fine


def test_monkeypatch_sees_imports_outside_the_hunk_through_sources():
    diff = change_diff("train.py", "x = 1", "metrics.accuracy = fake", start=30)
    assert "monkeypatch-metric" not in rules_in(diff)  # no import visible: can't tell a module from an object
    assert "monkeypatch-metric" in rules_in(diff, {"train.py": "import metrics\n" + "x\n" * 28 + "metrics.accuracy = fake\n"})


def test_sys_modules_swap():
    assert "monkeypatch-metric" in rules_in(added_file_diff("train.py", "import sys\nsys.modules['metrics'] = fake"))


@pytest.mark.parametrize("line", [
    'os.environ["SOTALAB_SEED"] = "3"',
    "os.environ.setdefault('SOTALAB_SEED', '3')",
])
def test_seed_override(line):
    assert "seed-override" in rules_in(change_diff("train.py", "pass", line))


def test_reading_the_seed_is_fine_and_literal_seeding_is_a_warning():
    assert not rules_in(change_diff("train.py", "pass", 'seed = int(os.environ["SOTALAB_SEED"])'))
    found = diff_rules.scan(change_diff("train.py", "pass", "rng = np.random.default_rng(17)"), CTX)
    assert [f.rule for f in found] == ["seed-pinned"] and RULES["seed-pinned"].severity == "warn"
    assert not rules_in(change_diff("train.py", "pass", "rng = np.random.default_rng(seed)"))


@pytest.mark.parametrize("line", [
    'x_test, y_test = data.load_test("heldout")',
    'arr = np.load("data/test.npz")',
    'folder = os.environ.get("SOTALAB_HELD_OUT")',
    'ds = load_dataset("glue", split="test")',
    'frame = splits["test"]',
    'path = "heldout/labels.csv"',
])
def test_held_out_read(line):
    assert "held-out-read" in rules_in(change_diff("train.py", "pass", line))


@pytest.mark.parametrize("line", [
    "import unittest",
    'assert latest == "pytest"',
    "def test_shapes():",
    'np.load("data/train.npz")',
])
def test_held_out_read_quiet_on_other_uses_of_test(line):
    assert "held-out-read" not in rules_in(change_diff("train.py", "pass", line))


@pytest.mark.parametrize("line", [
    "x_tr, x_va = train_test_split(x, test_size=0.1, stratify=y)",
    "data.VAL_FRACTION = 0.1",
    "skf = StratifiedKFold(5)",
    "x_val = x_val[keep]",
    "y_val[y_val == 3] = 0",
])
def test_split_change_in_code_that_draws_on_the_evaluators_data(line):
    source = "import data\n" + "x = 1\n" * 8 + "pass\n"
    assert "split-change" in rules_in(change_diff("train.py", "pass", line), {"train.py": source})
    assert "split-change" in rules_in(change_diff("evaluate.py", "pass", line))


@pytest.mark.parametrize("line", [
    "x_tr, x_va = train_test_split(x, test_size=0.1, stratify=y)",
    "n_val = int(DEV_FRACTION * len(y))",
    "x_val, y_val = x[order[:n_val]], y[order[:n_val]]",
    "x_val = x_val[keep]",
])
def test_an_internal_split_of_the_training_data_is_honest(line):
    """Early stopping on a dev split carved from the data fit() was handed changes nothing
    the evaluator scores on (issue #10: it was disqualified as a split change)."""
    assert not rules_in(change_diff("train.py", "pass", line), {"train.py": "import numpy as np\n" + "pass\n" * 9})


def test_removing_split_code_is_a_split_change():
    diff = change_diff("prep.py", "idx = train_test_split(idx, test_size=0.2)", "idx = idx")
    assert "split-change" in rules_in(diff)


def test_resampling_training_data_is_a_warning():
    found = diff_rules.scan(change_diff("train.py", "pass", "x, y = oversample_minority(x, y)"), CTX)
    assert [f.rule for f in found] == ["data-resample"]


@pytest.mark.parametrize("line", [
    "score = recall_at_k(ranked, relevant, k=50)",
    "best = max(seed_scores)",
    "final_acc = accs.max()",
    "f1 = f1_score(y, p, average='micro')",
])
def test_metric_param_change(line):
    assert "metric-param-change" in rules_in(change_diff("train.py", "pass", line))


def test_metric_param_quiet_on_model_parameters():
    assert not rules_in(change_diff("train.py", "pass", "model = KNN(k=5)"))
    assert not rules_in(change_diff("train.py", "pass", "h = np.maximum(h, 0)"))


def test_exit_hooks_are_warnings():
    found = diff_rules.scan(change_diff("train.py", "pass", "atexit.register(save_checkpoint)"), CTX)
    assert [f.rule for f in found] == ["output-hook"]


@pytest.mark.parametrize("line", [
    "sys.stdout = io.StringIO()",
    "sys.stdout.write = filtered_write",
    "builtins.print = quiet_print",
    "__builtins__['print'] = quiet_print",
    "setattr(builtins, 'print', quiet_print)",
    "with contextlib.redirect_stdout(buffer):",
])
def test_replacing_the_evaluators_output_fails(line):
    assert "output-tamper" in rules_in(change_diff("train.py", "pass", line))


def test_printing_and_flushing_are_not_tampering():
    assert not rules_in(change_diff("train.py", "pass", "sys.stdout.flush(); print('epoch', i, file=sys.stderr)"))


def test_comments_and_prose_never_trip_rules():
    assert not rules_in(change_diff("train.py", "pass", "# do not read heldout/test.npz or print accuracy=0.99"))
    assert not rules_in(added_file_diff("NOTES.md", "We stratify nothing; accuracy=0.97 on x_test"))


@pytest.mark.parametrize("name", [t["name"] for t in json.loads((TINYNET / "trials.json").read_text())["trials"]
                                  if t["expect"] == "valid"])
def test_honest_tinynet_patches_have_no_finding(name):
    result = diff_rules.check((TINYNET / "patches" / f"{name}.patch").read_text(), CTX)
    assert result.verdict == "pass" and not result.evidence, result.evidence


def test_each_planted_tinynet_cheat_breaks_its_rule():
    manifest = json.loads((TINYNET / "trials.json").read_text())["trials"]
    planted = [t for t in manifest if t.get("rule") and RULES[t["rule"]].check == "diff_rules"]
    assert len(planted) >= 5
    for trial in planted:
        result = diff_rules.check((TINYNET / trial["patch"]).read_text(), CTX)
        assert result.verdict == "fail", trial["name"]
        assert trial["rule"] in {e.rule for e in result.evidence}, (trial["name"], result.evidence)
        assert all(e.file and e.line for e in result.evidence)


def test_every_rule_is_listed_in_the_supervisor_red_lines():
    text = (REPO / "skills" / "supervisor" / "references" / "red-lines.md").read_text()
    listed = {m[0]: (m[1], m[2]) for m in
              re.findall(r"^\| `([a-z-]+)` \| (\w+) \| (\w+) \|", text, re.MULTILINE)}
    assert listed == {r.id: (r.check, r.severity) for r in RULES.values()}


def test_docstrings_and_doctests_are_prose():
    body = '''
def helper(x):
    """Resampling helpers; see split="test" and np.random.seed(0).

    >>> rng = np.random.default_rng(42)
    >>> print("accuracy=0.99")
    """
    return x
'''
    assert not rules_in(added_file_diff("helpers.py", body))
    assert diff_rules.prose_lines([(1, 'x = 1'), (2, '"""doc'), (3, 'inside'), (4, '"""'), (5, 'y = 2')]) == {2, 3, 4}


def test_a_metric_named_default_in_a_signature_is_not_a_literal():
    assert not rules_in(change_diff("train.py", "pass", "def fit(x, precision=1.0, accuracy=0):"))
    assert "metric-literal" in rules_in(change_diff("train.py", "pass", "logger.log(accuracy=0.99, step=3)"))


def test_python_map_is_not_a_metric():
    assert not rules_in(change_diff("train.py", "pass", "k = list(map(int, parts))"))


@pytest.mark.parametrize("line", [
    "os.dup2(os.open(os.devnull, os.O_WRONLY), 1)",
    "os.close(1)",
    "sys.stdout.close()",
])
def test_closing_or_repointing_the_evaluators_stdout_is_output_tamper(line):
    assert "output-tamper" in rules_in(change_diff("train.py", "pass", line))


def test_closing_ordinary_descriptors_is_fine():
    assert "output-tamper" not in rules_in(change_diff("train.py", "pass", "os.close(handle)"))


SHADOW_CTX = diff_rules.DiffContext.for_campaign(
    CampaignCreate.model_validate(json.loads((TINYNET / "campaign.json").read_text())),
    frozenset().union(*(diff_rules.top_level_imports((TINYNET / "repo" / name).read_text())
                        for name in ("evaluate.py", "data.py", "metrics.py"))))


@pytest.mark.parametrize("path", ["metrics/__init__.py", "data/__init__.py", "json.py",
                                  "metrics.cpython-311-x86_64-linux-gnu.so", "numpy/__init__.py"])
def test_an_added_file_that_shadows_an_evaluator_module_is_caught(path):
    found = {f.rule for f in diff_rules.scan(added_file_diff(path, "def accuracy(a, b):\n    return 1.0"), SHADOW_CTX)}
    assert "module-shadow" in found


@pytest.mark.parametrize("path", ["model_utils.py", "tinynet/__init__.py", "src/json.py", "notes/metrics.txt"])
def test_added_files_with_their_own_names_shadow_nothing(path):
    found = {f.rule for f in diff_rules.scan(added_file_diff(path, "x = 1"), SHADOW_CTX)}
    assert "module-shadow" not in found


def test_top_level_imports_reads_module_names():
    text = "import os, json as j\nimport numpy.linalg as la\nfrom data import load_splits\nfrom . import local\n"
    assert diff_rules.top_level_imports(text) == {"os", "json", "numpy", "data"}


@pytest.mark.parametrize("line, rule", [
    ("x_extra, y_extra = data.sample(data.N_TEST, data.HELDOUT_SEED)", "held-out-read"),
    ("from data import write_test", "held-out-read"),
    ("x_all, y_all = data.sample(data.N_TRAINVAL, data.TRAINVAL_SEED)", "eval-data-rebuild"),
    ("from data import TRAINVAL_SEED as s", "eval-data-rebuild"),
])
def test_trial_code_reaching_into_the_evaluators_test_data_or_seeds(line, rule):
    assert rule in rules_in(change_diff("train.py", "pass", line))


def test_using_the_evaluators_ordinary_constants_is_fine():
    found = rules_in(change_diff("train.py", "pass", "onehot = np.eye(data.N_CLASSES)[y]"))
    assert not found & {"held-out-read", "eval-data-rebuild"}


@pytest.mark.parametrize("line, rule", [
    ('vars(metrics)["accuracy"] = lambda y, p: 0.99', "monkeypatch-metric"),
    ("metrics.__dict__['accuracy'] = fake", "monkeypatch-metric"),
    ("vars(d).update(load_splits=my_splits)", "monkeypatch-data"),
    ("metrics.__dict__.update({'macro_f1': fake})", "monkeypatch-metric"),
    ("vars(metrics)[name] = fake", "monkeypatch-metric"),
    ("vars(d)[name] = fake", "monkeypatch-data"),   # d is the data module
])
def test_writing_into_a_modules_namespace_is_a_monkeypatch(line, rule):
    body = f"import metrics\nimport data as d\n{line}"
    found = {(f.line, f.rule) for f in diff_rules.scan(added_file_diff("train.py", body), CTX)}
    assert (3, rule) in found


def test_reading_a_modules_namespace_is_fine():
    body = ("import metrics\nnames = sorted(vars(metrics))\nfn = metrics.__dict__.get('accuracy')\n"
            "same = vars(metrics)['accuracy'] == fn")
    assert not diff_rules.scan(added_file_diff("train.py", body), CTX)


@pytest.mark.parametrize("line", [
    'caller = sys._getframe(1).f_locals',
    "y_val = inspect.currentframe().f_back.f_locals['y_val']",
    "frames = inspect.stack()",
    "arrays = [o for o in gc.get_objects() if isinstance(o, np.ndarray)]",
    "main = sys.modules['__main__']",
    "sys.settrace(grab_locals)",
])
def test_reaching_into_the_evaluators_frames_or_objects(line):
    assert "frame-introspection" in rules_in(change_diff("train.py", "pass", line))


@pytest.mark.parametrize("line", [
    "frame = pd.DataFrame(rows)",
    "stack = np.stack([a, b])",
    "gc.collect()",
    "if __name__ == '__main__':",
])
def test_ordinary_code_is_not_introspection(line):
    assert "frame-introspection" not in rules_in(change_diff("train.py", "pass", line))


def test_swapping_a_metric_functions_code_is_a_monkeypatch():
    for body in ("import metrics\nmetrics.accuracy.__code__ = fake.__code__",
                 "from metrics import accuracy\naccuracy.__code__ = (lambda y_true, y_pred: 0.99).__code__"):
        assert "monkeypatch-metric" in rules_in(added_file_diff("train.py", body)), body


@pytest.mark.parametrize("line", ["np.mean = lambda *a, **k: 0.99", "np.mean = my_mean",
                                  "setattr(np, 'mean', my_mean)", "json.dump = my_dump"])
def test_replacing_a_function_of_a_library_the_evaluator_imports(line):
    body = f"import numpy as np\nimport json\n{line}"
    assert "monkeypatch-dependency" in {f.rule for f in diff_rules.scan(added_file_diff("model.py", body), SHADOW_CTX)}


@pytest.mark.parametrize("body", [
    "import numpy as np\nnp.seterr_mode = 'raise'",                 # a setting, not a function
    "import torch\ntorch.backends.cudnn.benchmark = True",          # a library the evaluator does not import
    "import train\ntrain.fit = better_fit",                         # the repository's own module
])
def test_settings_other_libraries_and_own_modules_are_only_reviewed(body):
    ctx = diff_rules.DiffContext.for_campaign(
        CampaignCreate.model_validate(json.loads((TINYNET / "campaign.json").read_text())),
        SHADOW_CTX.evaluator_imports, frozenset({"train", "data", "metrics", "evaluate"}))
    assert {f.rule for f in diff_rules.scan(added_file_diff("model.py", body), ctx)} == {"module-patch"}


def test_relative_imports_do_not_turn_every_namespace_update_into_a_patch():
    body = "from . import helpers\nclass Config:\n    def copy(self, obj):\n        obj.__dict__.update(self.__dict__)"
    assert not diff_rules.scan(added_file_diff("model.py", body), CTX)


@pytest.mark.parametrize("line", ["os._exit(0)", "os.kill(os.getpid(), signal.SIGKILL)", "sys.exit(0)",
                                  "raise SystemExit", "quit()"])
def test_ending_the_process_from_trial_code_is_an_early_exit(line):
    assert "early-exit" in rules_in(added_file_diff("train.py", f"import os, sys, signal\n{line}"))


def test_an_exit_inside_a_main_guard_is_fine():
    body = "import sys\n\ndef main():\n    return 0\n\nif __name__ == '__main__':\n    sys.exit(main())"
    assert "early-exit" not in rules_in(added_file_diff("tools/cli.py", body))


@pytest.mark.parametrize("line, rule", [
    ("d.N_TRAINVAL = 500", "monkeypatch-data"),          # the module's real name is data
    ("d.WORLD_SEED = 3", "seed-override"),
    ("ev.ROUNDING = 2", "monkeypatch-metric"),
])
def test_patches_on_evaluator_modules_are_judged_by_the_modules_real_name(line, rule):
    body = f"import data as d\nimport evaluate as ev\n{line}"
    assert rule in rules_in(added_file_diff("model.py", body))


def test_any_setting_of_a_protected_module_counts():
    ctx = diff_rules.DiffContext(protected_globs=["utils.py"])
    found = {f.rule for f in diff_rules.scan(added_file_diff("model.py", "import utils as u\nu.ROUNDING = 2"), ctx)}
    assert found == {"monkeypatch-dependency"}


def test_setattr_with_a_computed_name_is_still_a_patch():
    body = "import data\nimport numpy as np\nfor k, v in overrides.items():\n    setattr(data, k, v)\nsetattr(np, name, fn)"
    found = {(f.line, f.rule) for f in diff_rules.scan(added_file_diff("model.py", body), CTX)}
    assert (4, "monkeypatch-data") in found and (5, "module-patch") in found


@pytest.mark.parametrize("line, rule", [
    ('exec(json.load(handle)["warmup"])', "dynamic-code"),
    ("fn = eval(expression)", "dynamic-code"),
    ("code = compile(text, 'x', 'exec')", "dynamic-code"),
    ("code = marshal.loads(blob)", "dynamic-code"),
    ('spec = importlib.util.spec_from_file_location("gettext", path)', "dynamic-code"),
    ('target = importlib.import_module("met" + "rics")', "dynamic-name"),
    ('mod = __import__(name)', "dynamic-name"),
    ('np_ = sys.modules["num" + "py"]', "dynamic-name"),
    ("sys.modules['metrics'].accuracy = fake", "dynamic-name"),
    ('vars(np_)["me" + "an"] = fake_mean', "dynamic-name"),
    ('__builtins__["ro" + "und"] = kind_round', "builtins-patch"),
    ("builtins.round = kind_round", "builtins-patch"),
    ('setattr(builtins, "pr" + "int", report)', "builtins-patch"),
])
def test_names_and_code_built_at_run_time(line, rule):
    assert rule in rules_in(change_diff("train.py", "pass", line))
    assert RULES[rule].severity == "fail"


@pytest.mark.parametrize("line", [
    "model.eval()",
    "pattern = re.compile(r'\\d+')",
    "net = torch.compile(net)",
    "def eval(self, batch):",
    'module = importlib.import_module("numpy.linalg")',
    "mod = sys.modules['numpy']",
    "for key, value in vars(args).items():",
    "self.__dict__.update(kwargs)",
])
def test_ordinary_code_is_not_dynamic(line):
    assert not rules_in(change_diff("train.py", "pass", line)) & {"dynamic-code", "dynamic-name", "builtins-patch"}


def test_processes_and_native_code_are_reviewed():
    found = {f.rule for f in diff_rules.scan(
        added_file_diff("train.py", "import subprocess, ctypes\nsubprocess.run(['nvidia-smi'])\nlib = ctypes.CDLL(p)"), CTX)}
    assert found == {"process-spawn", "native-code"}
    assert RULES["process-spawn"].severity == RULES["native-code"].severity == "warn"


@pytest.mark.parametrize("path, body, rule", [
    ("sitecustomize.py", "import builtins", "startup-file"),
    ("usercustomize.py", "x = 1", "startup-file"),
    ("zz_tidy.pth", "import builtins; builtins.print = None", "startup-file"),
    ("lookup.csv", "x,y\n1,2", "data-file"),
    ("schedule.jsonl", '{"a": 1}', "data-file"),
])
def test_added_files_that_run_at_start_up_or_hold_data(path, body, rule):
    assert rule in {f.rule for f in diff_rules.scan(added_file_diff(path, body), CTX)}


def binary_diff(path: str) -> str:
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1234567\nBinary files /dev/null and b/{path} differ\n"


@pytest.mark.parametrize("path, rule", [
    ("warm.pkl", "binary-file"), ("weights.bin", "binary-file"),
    ("__pycache__/train.cpython-311.pyc", "bytecode-file"), ("helper.pyc", "bytecode-file"),
    ("fast.cpython-311-x86_64-linux-gnu.so", "bytecode-file"),
])
def test_binary_and_bytecode_files_are_findings(path, rule):
    found = diff_rules.scan(binary_diff(path), CTX)
    assert [f.rule for f in found] == [rule] and found[0].file == path


def test_files_under_the_campaigns_data_paths_are_data():
    ctx = diff_rules.DiffContext(data_globs=["assets/**"])
    assert not diff_rules.scan(binary_diff("assets/embeddings.bin"), ctx)
    assert not diff_rules.scan(added_file_diff("assets/vocab.csv", "a,b"), ctx)
    assert diff_rules.scan(binary_diff("assets/__pycache__/x.cpython-311.pyc"), ctx)  # code is never data


def test_the_rules_are_tables_every_rule_id_of_which_is_a_red_line():
    ids = {r.rule for r in diff_rules.LINE_RULES} | {r.rule for r in diff_rules.FILE_RULES}
    assert ids <= set(RULES)
    assert all(RULES[i].check == "diff_rules" for i in ids)
