"""Trust by construction: what the evaluation path guarantees whatever the trial does.

- every seed runs on a fresh export of the committed snapshot (no untracked files, no
  bytecode, no links out, repository attributes ignored);
- at the isolated level the trial's step never has a label to read, and its outputs
  cannot point the scorer at the labels;
- at the in_process level a read of sealed data by trial code is on record;
- audit seeds are drawn by the server and recorded; a failed seed fails the audit.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sotalab.tools import trials
from sotalab.tools.audit import holdout
from sotalab.tools.evaluation import export
from sotalab.tools.runs import events
from tinynet_lab import TINYNET, TinynetCampaign


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def test_export_writes_the_commit_and_nothing_else(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text("print('trial')\n")
    (repo / "helper.py").write_text("X = 1\n")
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00planted bytecode")
    (repo / "out.link").symlink_to("/etc/passwd")
    (repo / "inside.link").symlink_to("helper.py")
    (repo / ".gitattributes").write_text("helper.py export-ignore\ntrain.py export-subst\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A", "-f")
    git(repo, "commit", "-qm", "c")
    commit = git(repo, "rev-parse", "HEAD").strip()
    (repo / "untracked.py").write_text("print('never committed')\n")

    made = export.export_commit(repo, commit, tmp_path / "export", store=None)
    files = sorted(p.relative_to(made.root).as_posix() for p in made.root.rglob("*"))
    assert files == [".gitattributes", "helper.py", "inside.link", "train.py"]  # attributes did not drop helper.py
    assert (made.root / "inside.link").readlink() == Path("helper.py")
    assert sorted(made.refused) == ["__pycache__/train.cpython-311.pyc", "out.link"]
    with pytest.raises(Exception, match="exists already"):
        export.export_commit(repo, commit, made.root, store=None)


def test_exports_of_one_read_are_each_fresh_and_match_git(tmp_path):
    """An evaluation reads a commit once and writes every seed's export from it: each
    export holds exactly the commit's tree (nested, executable bits, a submodule left
    out), and what one seed's run changes never reaches another's."""
    repo = tmp_path / "repo"
    (repo / "pkg" / "deep" / "er").mkdir(parents=True)
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "pkg" / "a.py").write_text("A = 1\n")
    (repo / "pkg" / "deep" / "er" / "b.txt").write_bytes(b"\x00\xffbinary")
    (repo / "same.txt").write_text("A = 1\n")  # the same blob twice
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/sub")
    git(repo, "commit", "-qm", "c")
    commit = git(repo, "rev-parse", "HEAD").strip()
    listed = [line.split("\t")[1] for line in git(repo, "ls-tree", "-r", commit).splitlines()]

    objects = export.read(repo, commit)
    assert [rel for *_, rel in objects.entries] == listed  # ls-tree -r's order, submodule included
    first = export.export_commit(repo, commit, tmp_path / "seed-1", None, objects)
    second = export.export_commit(repo, commit, tmp_path / "seed-2", None, objects)
    for made in (first, second):
        assert sorted(made.files) == ["pkg/a.py", "pkg/deep/er/b.txt", "run.sh", "same.txt"]
        assert made.refused == ["vendor/sub"]
        assert (made.root / "pkg" / "deep" / "er" / "b.txt").read_bytes() == b"\x00\xffbinary"
        assert (made.root / "run.sh").stat().st_mode & 0o111
    (first.root / "pkg" / "a.py").write_text("A = 2  # a run's change\n")
    assert (second.root / "pkg" / "a.py").read_text() == "A = 1\n"
    with pytest.raises(Exception, match="given the objects of"):
        export.export_commit(repo, git(repo, "rev-parse", "HEAD^{tree}").strip(), tmp_path / "x", None, objects)
    with pytest.raises(Exception, match="cat-file failed"):
        export.read(repo, "0" * 40)


@pytest.fixture(scope="module")
def tinynet(tmp_path_factory):
    return TinynetCampaign(tmp_path_factory.mktemp("isolation"))


PROBE_TRAIN = '''
import os, glob
def _probe():
    candidates = ["labels/val_labels.npz", "heldout/test_labels.npz", os.environ.get("SOTALAB_LABELS") or "",
                  os.environ.get("SOTALAB_HELD_OUT") or "", LAB_LABELS]
    seen = {c: os.path.exists(c) for c in candidates if c}
    seen["env"] = sorted(k for k in os.environ if k.startswith("SOTALAB_"))
    with open(os.path.join(os.environ["SOTALAB_OUTPUT_DIR"], "probe.json"), "w") as fh:
        json.dump(seen, fh)
_probe()
'''


def _new_trial(campaign: TinynetCampaign, files: dict[str, str]) -> int:
    tid = campaign.call("trial_create", campaign=campaign.id, kind="code", hypothesis="probe")["id"]
    for path, text in files.items():
        campaign.call("workspace_write", trial=tid, path=path, content=text)
    return tid


def _run_dir(campaign: TinynetCampaign, run_id: int) -> Path:
    return Path(campaign.lab.db.execute("SELECT run_dir FROM runs WHERE id = ?", [run_id]).fetchone()[0])


def test_isolated_predict_step_has_no_label_to_read(tinynet):
    lab_labels = str(tinynet.lab.path("labels", tinynet.id) / "labels" / "val_labels.npz")
    source = (TINYNET / "repo" / "train.py").read_text()
    probe = "import json\nLAB_LABELS = %r\n" % lab_labels + PROBE_TRAIN
    tid = _new_trial(tinynet, {"train.py": source.replace("import numpy as np\n", "import numpy as np\n" + probe, 1)})
    result = tinynet.call("trial_evaluate", trial=tid)
    assert result["integrity"] == "isolated" and result["label"] in ("keep", "discard")
    predict_run = result["runs"][0]["run_ids"][0]
    seen = json.loads((_run_dir(tinynet, predict_run) / "out" / "probe.json").read_text())
    assert not any(v for k, v in seen.items() if k != "env"), seen
    assert "SOTALAB_LABELS" not in seen["env"] and "SOTALAB_HELD_OUT" not in seen["env"]
    assert result["score"] == pytest.approx(tinynet.call("trial_get", trial=tinynet.baseline)["score"])


def test_predictions_linking_to_the_labels_never_reach_the_scorer(tinynet):
    lab_labels = tinynet.lab.path("labels", tinynet.id) / "labels" / "val_labels.npz"
    predict = (TINYNET / "repo" / "predict.py").read_text()
    # predict.py is protected (restored from the store), so the trial does it from train.py at exit.
    hook = ("import atexit, os\n"
            "def _link():\n"
            "    out = os.environ['SOTALAB_OUTPUT_DIR']\n"
            "    os.replace(os.path.join(out, 'predictions.npz'), os.path.join(out, 'real.npz'))\n"
            f"    os.symlink({str(lab_labels)!r}, os.path.join(out, 'predictions.npz'))\n"
            "atexit.register(_link)\n")
    source = (TINYNET / "repo" / "train.py").read_text()
    tid = _new_trial(tinynet, {"train.py": source.replace("import numpy as np\n", "import numpy as np\n" + hook, 1)})
    assert "predict.py" not in tinynet.call("workspace_diff", trial=tid)["diff"] and predict
    result = tinynet.call("trial_evaluate", trial=tid)
    assert "predictions/predictions.npz" in result["runs"][0]["refused"]
    assert result["label"] == "metric_missing" and result["score"] is None


def test_snapshot_never_commits_bytecode(tinynet):
    tid = _new_trial(tinynet, {"helper.py": "X = 1\n"})
    tree = Path(trials.load(tinynet.lab, tid).worktree)
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"bytecode")
    (tree / "stray.pyc").write_bytes(b"bytecode")
    tinynet.call("trial_snapshot", trial=tid)
    commit = trials.load(tinynet.lab, tid).commit_sha
    listed = git(tree, "ls-tree", "-r", "--name-only", commit).split()
    assert "helper.py" in listed and not [f for f in listed if f.endswith(".pyc")]


def test_full_audit_draws_its_seeds_and_records_them_first(tinynet):
    tid = tinynet.trial("honest_normalise")
    first = tinynet.call("audit_trial", trial=tid, depth="full", seeds=8)
    last_run = tinynet.lab.db.execute("SELECT max(id) FROM runs").fetchone()[0]
    second = tinynet.call("audit_trial", trial=tid, depth="full", seeds=3)
    assert len(first["seeds"]) == 8 and len(set(first["seeds"])) == 8
    assert first["seeds"] != second["seeds"] and not set(first["seeds"]) & {0}
    assert first["integrity"] == "isolated" and first["verdict"] == "valid", first["reason"]
    ran = {row[0] for row in tinynet.lab.db.execute(
        "SELECT seed FROM runs WHERE trial_id = ? AND purpose = 'audit'", [tid])}
    assert set(first["seeds"]) <= ran
    # The trial's and the baseline's evaluations share the queue: the baseline's first run
    # starts while the trial's are still going (2 CPU slots here), not after the last.
    def spans(trial_id):  # the second audit's runs
        return tinynet.lab.db.execute("SELECT min(started_at), max(ended_at) FROM runs WHERE trial_id = ? AND "
                                      "purpose = 'audit' AND id > ?", [trial_id, last_run]).fetchone()
    (trial_start, trial_end), (base_start, base_end) = spans(tid), spans(tinynet.baseline)
    assert base_start < trial_end and trial_start < base_end, "the audit ran its evaluations one after the other"


def test_a_seed_that_crashes_in_an_audit_fails_it(tinynet):
    source = (TINYNET / "repo" / "train.py").read_text()
    crash = ("def fit(x, y, seed, n_classes):\n"
             "    if seed % 2:\n"
             "        raise RuntimeError('diverged')\n"
             "    return _fit(x, y, seed, n_classes)\n")
    changed = source.replace("LEARNING_RATE = 0.002", "LEARNING_RATE = 0.005").replace("def fit(", "def _fit(") + crash
    tid = _new_trial(tinynet, {"train.py": changed})
    assert tinynet.call("trial_evaluate", trial=tid)["label"] == "keep"  # seed 0 is even
    audit = tinynet.call("audit_trial", trial=tid, depth="full", seeds=6)
    significance = next(c for c in audit["checks"] if c["name"] == "significance")
    assert significance["verdict"] == "fail"
    assert any(e["rule"] == "seed-failed" for e in significance["evidence"])
    assert audit["verdict"] != "valid"


def test_snapshot_refuses_a_flood_of_new_files(tinynet):  # after the audits: trial ids key their seed draws
    """A side run can leave hundreds of thousands of empty files in a worktree (no disk
    blocks); committing them took 41 s for 418,000, and a tool call has 60 s."""
    tid = _new_trial(tinynet, {"helper.py": "X = 1\n"})
    tree = Path(trials.load(tinynet.lab, tid).worktree)
    for d in range(21):
        (tree / f"c{d}").mkdir()
        for i in range(1000):
            (tree / f"c{d}" / str(i)).touch()
    with pytest.raises(Exception, match="new files"):
        tinynet.call("trial_snapshot", trial=tid)
    (tree / ".gitignore").write_text("c*/\n")  # what the refusal suggests
    tinynet.call("trial_snapshot", trial=tid)
    listed = git(tree, "ls-tree", "-r", "--name-only", trials.load(tinynet.lab, tid).commit_sha).split()
    assert "helper.py" in listed and not [f for f in listed if f.startswith("c")]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return TinynetCampaign(tmp_path_factory.mktemp("in-process"), spec_file="campaign_in_process.json")


def test_in_process_read_of_validation_labels_by_trial_code_is_on_record(in_process):
    source = (TINYNET / "repo" / "train.py").read_text()
    leak = 'import numpy as np\n_VAL = np.load("labels/val_labels.npz")["y"]  # the makemore leak\n'
    tid = _new_trial(in_process, {"train.py": source.replace("import numpy as np\n", leak, 1)})
    result = in_process.call("trial_evaluate", trial=tid)
    assert result["integrity"] == "in_process"
    records = events.read(_run_dir(in_process, result["runs"][0]["run_ids"][0]))
    reads = [r for r in records if r["ev"] == "open" and r["path"] == "labels/val_labels.npz"]
    assert {r["by"].split(":")[0] for r in reads} == {"train.py", "data.py"}
    baseline_run = in_process.lab.db.execute("SELECT run_dir FROM runs WHERE trial_id = ? ORDER BY id LIMIT 1",
                                             [in_process.baseline]).fetchone()[0]
    base_reads = [r for r in events.read(Path(baseline_run)) if r["ev"] == "open" and "labels" in r["path"]]
    assert {r["by"].split(":")[0] for r in base_reads} == {"data.py"}


def test_in_process_hook_cannot_be_shadowed_by_the_trial(in_process):
    tid = _new_trial(in_process, {"sitecustomize.py": "raise SystemExit('shadowed')\n"})
    result = in_process.call("trial_evaluate", trial=tid)
    assert result["label"] in ("keep", "discard") and result["runs"][0]["events"] > 0


def test_in_process_run_can_only_append_to_its_evidence_channel(in_process):
    """A run that could read the FIFO would take the hook's records out before the
    supervisor does and put back only those it likes; nor may it make it readable."""
    source = (TINYNET / "repo" / "train.py").read_text()
    probe = ("import json, os\n"
             "def _try(call):\n"
             "    try:\n"
             "        call()\n"
             "        return 'ok'\n"
             "    except OSError as exc:\n"
             "        return exc.__class__.__name__\n"
             "_chan = os.environ['SOTALAB_EVENTS']\n"
             "_seen = {'read': _try(lambda: os.close(os.open(_chan, os.O_RDONLY | os.O_NONBLOCK))),\n"
             "         'chmod': _try(lambda: os.chmod(_chan, 0o666)),\n"
             "         'append': _try(lambda: os.close(os.open(_chan, os.O_WRONLY)))}\n"
             "with open(os.path.join(os.environ['SOTALAB_OUTPUT_DIR'], 'channel.json'), 'w') as _fh:\n"
             "    json.dump(_seen, _fh)\n")
    tid = _new_trial(in_process, {"train.py": source.replace("import numpy as np\n", "import numpy as np\n" + probe, 1)})
    result = in_process.call("trial_evaluate", trial=tid)
    seen = json.loads((_run_dir(in_process, result["runs"][0]["run_ids"][0]) / "out" / "channel.json").read_text())
    assert seen["read"] != "ok" and seen["chmod"] != "ok" and seen["append"] == "ok", seen


def test_evidence_that_ran_out_cannot_vouch_for_a_run(tmp_path):
    """With the primary metric in a JSON file (no printed line to confirm), a trial that
    spends the hook's record budget on empty files and then reads the validation labels
    must not get a valid audit."""
    from cheats.catalogue import FLOOD_THEN_READ, MEMORY_PREDICT, PREDICT

    spec = json.loads((TINYNET / "campaign_in_process.json").read_text())
    spec["evaluator"]["metrics"][0] = {"name": "accuracy", "json_file": "metrics.json"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    campaign = TinynetCampaign(tmp_path, spec_file=str(tmp_path / "spec.json"))
    source = (TINYNET / "repo" / "train.py").read_text()
    flood = source.replace(PREDICT, MEMORY_PREDICT.lstrip("\n")).replace("    return model\n",
                                                                        FLOOD_THEN_READ + "    return model\n")
    tid = _new_trial(campaign, {"train.py": flood})
    assert campaign.call("trial_evaluate", trial=tid)["score"] > 0.9  # it did read them
    audit = campaign.call("audit_trial", trial=tid, depth="quick")
    assert audit["verdict"] == "invalid", audit["reason"]
    assert "runtime-overflow" in {e["rule"] for c in audit["checks"] for e in c["evidence"]}


def test_baseline_reproduction_is_judged(in_process):
    baseline = in_process.call("trial_get", trial=in_process.baseline)
    reproduction = baseline["evaluation"]["reproduction"]
    assert reproduction["reproduced"] is True and reproduction["gap"] == pytest.approx(0.568 - 0.58)


def test_held_out_gain_far_below_validation_gain_is_an_anomaly():
    validation = ([0.80, 0.81, 0.79, 0.80], [0.60, 0.61, 0.59, 0.60])
    agreeing = holdout.check(validation, ([0.79, 0.80, 0.81, 0.80], [0.60, 0.59, 0.61, 0.60]), "max")
    leaked = holdout.check(validation, ([0.70, 0.71, 0.69, 0.70], [0.60, 0.59, 0.61, 0.60]), "max")
    assert agreeing.verdict == "pass" and leaked.verdict == "fail"
    assert leaked.evidence[0].rule == "held-out-disagrees" and "validation split" in leaked.evidence[0].detail
    # A deterministic evaluator has no seed noise; two finite splits still differ a little.
    deterministic = ([0.8] * 3, [0.6] * 3)
    assert holdout.check(deterministic, ([0.78] * 3, [0.6] * 3), "max").verdict == "pass"
    assert holdout.check(deterministic, ([0.69] * 3, [0.6] * 3), "max").verdict == "fail"


def test_nothing_a_held_out_run_writes_reaches_a_tool(tinynet):
    from sotalab.tools.errors import LabError
    from sotalab.tools.evaluation import pipeline
    from sotalab.tools.runs import tools as run_tools

    result = pipeline.evaluate(tinynet.lab, tinynet.baseline, split="held_out", purpose="finalize")
    assert result.score is not None and not result.recorded
    for run_id in result.runs[0].run_ids:
        with pytest.raises(LabError, match="sealed"):
            tinynet.call("run_logs", run=run_id)
        # The predict step sees the held-out inputs: its exit code, its time and memory are
        # channels it controls (a sleep of so many ms per input value), sealed as its log is.
        with pytest.raises(LabError, match="sealed"):
            tinynet.call("run_logs", run=run_id, mode="metrics")
        shown = tinynet.call("run_wait", run=run_id, timeout_s=0)
        assert shown["exit_code"] is None and shown["reason"] is None and not shown["telemetry"], shown
        row = run_tools.queue.get_row(tinynet.lab, run_id)
        assert "log" not in run_tools._progress_line({**row, "status": "running"})  # what run_wait's progress says
    assert not list(tinynet.lab.path("evals").iterdir())  # its exports are gone


def test_in_process_metric_printed_by_trial_code_after_the_evaluator_does_not_count(in_process):
    """An atexit handler writing its own accuracy line straight to fd 1 would be the last
    match the regex sees; only a value the evaluator's own code printed counts."""
    source = (TINYNET / "repo" / "train.py").read_text()
    late = ("import atexit, os\n"
            "atexit.register(lambda: os.write(1, b'accuracy=0.9900\\n'))\n")
    tid = _new_trial(in_process, {"train.py": source.replace("import numpy as np\n", "import numpy as np\n" + late, 1)})
    result = in_process.call("trial_evaluate", trial=tid)
    assert result["label"] == "metric_missing" and result["score"] is None
    assert 0.99 not in result["seed_scores"].values()


def test_code_that_acts_only_on_the_held_out_split_is_on_record_at_finalize(in_process):
    """Training on held-out labels only when the held-out split is mounted never runs
    during an audit; finalize reads the runtime evidence of its own runs."""
    from sotalab.tools import campaigns
    from sotalab.tools.audit.tools import _held_out_evidence
    from sotalab.tools.evaluation import pipeline

    source = (TINYNET / "repo" / "train.py").read_text()
    sneak = ("import os, glob\n"
             "for _root in list(os.environ.values()):\n"
             "    for _f in glob.glob(os.path.join(_root, '*', '*_labels.npz')) if os.path.isdir(_root) else []:\n"
             "        np.load(_f)\n")
    tid = _new_trial(in_process, {"train.py": source.replace("import numpy as np\n", "import numpy as np\n" + sneak, 1)})
    in_process.call("trial_evaluate", trial=tid)
    result = pipeline.evaluate(in_process.lab, tid, split="held_out", purpose="finalize", seeds=[3])
    evidence = _held_out_evidence(in_process.lab, campaigns.load(in_process.lab, in_process.id), tid,
                                  result.runs[0].run_ids)
    assert evidence.verdict == "fail", evidence.summary
    assert any(e.file == "train.py" for e in evidence.evidence), evidence.evidence
    honest = pipeline.evaluate(in_process.lab, in_process.baseline, split="held_out", purpose="finalize", seeds=[3])
    clean = _held_out_evidence(in_process.lab, campaigns.load(in_process.lab, in_process.id), in_process.baseline,
                               honest.runs[0].run_ids)
    assert clean.verdict != "fail", clean.summary  # the evaluator's own read of the held-out labels is fine
