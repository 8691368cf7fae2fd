"""env_diagnose: classify a failed build or run from its log, and remember what fixed it.

A diagnosis is a list of findings, each an error signature (``category:key``, e.g.
``missing_module:cv2``) with the evidence lines and concrete fixes. Every finding is
stored as a failure memory; when a later build repairs that environment, the change it
made is recorded on the memory with whether it worked. Diagnosing the same signature
again, in any campaign, returns the fixes that worked before first: retrieve before repair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from . import ledger
from .repo_project import own_project
from .workspaces import campaign_repo
from .errors import InvalidInput, NotFound
from .home import Lab
from .registry import tool

MAX_LOG_CHARS = 2_000_000
MAX_EVIDENCE = 5

# Import names that differ from the distribution to install.
MODULE_PACKAGES = {
    "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "PIL": "pillow", "yaml": "pyyaml",
    "skimage": "scikit-image", "bs4": "beautifulsoup4", "attr": "attrs", "Crypto": "pycryptodome",
    "dateutil": "python-dateutil", "google": "protobuf", "dotenv": "python-dotenv", "jwt": "pyjwt",
    "Levenshtein": "python-Levenshtein", "magic": "python-magic", "git": "gitpython", "serial": "pyserial",
}
# Headers to the Debian package that ships them.
HEADER_PACKAGES = {
    "Python.h": "python3-dev", "ffi.h": "libffi-dev", "ssl.h": "libssl-dev", "zlib.h": "zlib1g-dev",
    "bzlib.h": "libbz2-dev", "lzma.h": "liblzma-dev", "sqlite3.h": "libsqlite3-dev", "jpeglib.h": "libjpeg-dev",
    "png.h": "libpng-dev", "hdf5.h": "libhdf5-dev", "libxml/xmlversion.h": "libxml2-dev", "yaml.h": "libyaml-dev",
    "cblas.h": "libopenblas-dev", "omp.h": "libgomp1",
}


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: re.Pattern
    detail: str
    fixes: Callable[[str], list[str]]


def _rule(category: str, regex: str, detail: str, fixes: Callable[[str], list[str]]) -> Rule:
    return Rule(category, re.compile(regex, re.IGNORECASE), detail, fixes)


RULES = [
    _rule("missing_module", r"ModuleNotFoundError: No module named '([\w.]+)'|ImportError: No module named '?([\w.]+)",
          "the code imports a module that is not installed",
          lambda key: [f"add the package '{MODULE_PACKAGES.get(key.split('.')[0], key.split('.')[0])}' "
                       f"(env_build overrides.packages)"]),
    _rule("no_matching_distribution",
          r"No matching distribution found for ([^\s;]+)|Because ([\w.-]+)[^ ]* was not found in the package registry"
          r"|there is no version of ([\w.-]+)",
          "a requirement has no distribution for this Python or platform",
          lambda key: [f"relax or remove the pin on '{key}' (overrides.pins / overrides.remove)",
                       f"check the package name '{key}' on PyPI", "try another Python version (overrides.python)"]),
    _rule("version_conflict",
          r"Because you require ([\w.-]+)[^\n]* and |ResolutionImpossible|conflicting dependencies"
          r"|requirements are unsatisfiable|depends on ([\w.-]+)[^\n]*and[^\n]*incompatible",
          "the requirements contradict each other",
          lambda key: ["loosen the conflicting pins (overrides.pins / overrides.remove)",
                       "pin one side to a version compatible with the other"]),
    _rule("python_unavailable",
          r"No interpreter found for Python ([\d.]+)|requires a different Python|Requires-Python"
          r"|python-build-standalone/\S*/cpython-(\d+\.\d+)",
          "the requested Python version is not available or not supported by a package",
          lambda key: ["pick an installed Python (overrides.python)", "or relax the package's version"]),
    _rule("missing_header", r"fatal error: ([\w./+-]+\.h): No such file or directory",
          "a C extension needs development headers that are not installed",
          lambda key: [f"install the system package '{HEADER_PACKAGES.get(key, 'lib<name>-dev')}' "
                       "(docker backend, overrides.system_packages)",
                       "or pin a version of the package that ships a binary wheel"]),
    _rule("missing_compiler",
          r"command '(gcc|g\+\+|cc|c\+\+)' failed|(gcc|g\+\+|cc): (?:command )?not found|unable to execute '(gcc|cc|g\+\+)'"
          r"|error: (Microsoft Visual C\+\+)|(cargo|rustc)[^\n]*not (?:found|installed)",
          "building a package from source needs a compiler that is missing",
          lambda key: ["install 'build-essential' (docker backend, overrides.system_packages)"
                       if key not in ("cargo", "rustc") else "install 'cargo' (overrides.system_packages)",
                       "or pin a version of the package that ships a binary wheel for this Python"]),
    _rule("cuda_mismatch",
          r"CUDA driver version is insufficient|no kernel image is available|Found no NVIDIA driver"
          r"|(libcu\w+\.so\.[\d.]+): cannot open shared object|CUDA error: (?:invalid device|unknown error)"
          r"|The NVIDIA driver on your system is too old",
          "the CUDA runtime the code was built for does not match the driver or the GPU",
          lambda key: ["install a torch build for the driver's CUDA version (e.g. the cu121 or cu118 wheel index)",
                       "use a cuda sandbox base matching the driver (overrides.base='cuda', overrides.docker_base)",
                       "check nvidia-smi for the driver's supported CUDA version"]),
    _rule("torch_build_mismatch",
          r"operator (torchvision|torchaudio)::\w+ does not exist|(torchvision|torchaudio)[^\n]*undefined symbol"
          r"|Detected that PyTorch and (torchvision|torchaudio) were compiled with different CUDA",
          "torchvision or torchaudio was built for another torch build than the one installed (typically a CPU "
          "torch from find_links or the CPU index, and torchvision from PyPI, built for PyPI's CUDA torch)",
          lambda key: [f"install {key} from where torch comes from: the CPU index (overrides.extra_index_urls "
                       f"https://download.pytorch.org/whl/cpu) or a matching +cpu wheel in overrides.find_links",
                       f"or take torch and {key} both from PyPI (the CUDA build also runs on a CPU; several GB)",
                       f"or drop {key} (overrides.remove) if the code can do without it"]),
    _rule("torch_weights_only", r"Weights only load failed",
          "the code loads a checkpoint that pickles Python objects, written for torch < 2.6, whose torch.load "
          "defaulted to weights_only=False",
          lambda key: ["pin a torch older than 2.6 (overrides.pins) if one is available",
                       "or have the evaluator start the code with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in its "
                       "environment (only for checkpoints the run wrote itself)"]),
    _rule("image_pull_failed",
          r"pull access denied|manifest for \S+ not found|repository does not exist|registry-1\.docker\.io"
          r"|did not build FROM",
          "the sandbox image's base could not be found locally or pulled from a registry",
          lambda key: ["build a local base with scripts/make_base_image.sh and pass overrides.docker_base="
                       "'sotalab-base:bookworm' (or set SOTALAB_SANDBOX_BASE)",
                       "or `docker pull` the base image where a registry is reachable"]),
    _rule("network_unreachable",
          r"Temporary failure in name resolution|Network is unreachable|Failed to establish a new connection"
          r"|Could not resolve host|dns error|error sending request for url|Connection (?:refused|timed out)"
          r"|Failed to fetch|no such host|dial tcp",
          "the build could not reach the package index",
          lambda key: ["retry when the network is back", "point uv at a reachable mirror (UV_INDEX_URL)",
                       "build from uv's cache offline (UV_OFFLINE=1) if the packages are cached"]),
    _rule("missing_file", r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^']+)'",
          "a file, directory or program the code opens is not there",
          lambda key: ["data the code downloads at run time must come with the campaign: runs have no network "
                       "(campaign_create overlay.files, or overlay.splits of the repository's data)",
                       "a program must be installed in the environment; the repository's own console scripts "
                       "never are (the lab does not install the repository): call their functions",
                       "check the path against the run's working directory, the export's root"]),
    _rule("disk_full", r"No space left on device|\[Errno 28\]|Disk quota exceeded",
          "the disk is full",
          lambda key: ["free space: `uv cache prune`, remove unused environments and images (docker image prune)"]),
    _rule("out_of_memory",
          r"(CUDA) out of memory|(torch\.OutOfMemoryError)|\b(MemoryError)\b|Cannot allocate memory|\b(Killed)\b"
          r"|exit code 137|OOMKilled",
          "the process ran out of memory",
          lambda key: ["reduce the batch size or model size", "raise the run's memory budget",
                       "for GPU memory: mixed precision or gradient accumulation"]),
]


class Finding(BaseModel):
    signature: str = Field(description="category:key, the same across campaigns for the same failure")
    category: str
    detail: str
    evidence: list[str] = Field(description="matching log lines, 'L<line>: text'")
    fixes: list[str] = Field(description="concrete fixes for this signature")
    known_fixes: list[dict] = Field(default_factory=list,
                                    description="fixes recorded before for this signature, ones that worked first")
    memory_id: int | None = None


def _key(category: str, match: re.Match) -> str:
    """The specific part of a signature: which module, package, header, tool, memory."""
    groups = [g for g in match.groups() if g]
    if category == "out_of_memory":
        return "gpu" if any(g in ("CUDA", "torch.OutOfMemoryError") for g in groups) else "cpu"
    if not groups:
        return ""
    key = groups[0]
    if category == "missing_module":
        return key.split(".")[0]
    if category in ("no_matching_distribution", "version_conflict"):
        return re.split(r"[=<>!~\[;,]", key)[0].lower()
    return key


def classify(log: str) -> list[Finding]:
    """Every error signature in ``log``, in order of first appearance."""
    findings: dict[str, Finding] = {}
    order: dict[str, int] = {}
    lines = log[-MAX_LOG_CHARS:].splitlines()
    for number, line in enumerate(lines, start=1):
        for rule in RULES:
            match = rule.pattern.search(line)
            if not match:
                continue
            key = _key(rule.category, match)
            signature = f"{rule.category}:{key}" if key else rule.category
            finding = findings.get(signature)
            if finding is None:
                finding = findings[signature] = Finding(signature=signature, category=rule.category,
                                                        detail=rule.detail, evidence=[], fixes=rule.fixes(key))
                order[signature] = number
            if len(finding.evidence) < MAX_EVIDENCE:
                finding.evidence.append(f"L{number}: {line.strip()[:300]}")
            break  # one signature per line: the most specific rule wins (RULES order)
    return sorted(findings.values(), key=lambda f: order[f.signature])


def _own_module(repo: Path, name: str) -> str | None:
    """Where the repository itself provides module ``name`` (a src/ layout included), or None."""
    for base in (repo / "src", repo):
        for candidate in (base / name / "__init__.py", base / f"{name}.py"):
            if candidate.is_file():
                return candidate.parent.relative_to(repo).as_posix() if candidate.name == "__init__.py" \
                    else candidate.relative_to(repo).as_posix()
    return None


def in_run(findings: list[Finding], repo: Path) -> list[Finding]:
    """Findings of a run's log, reworded for a run of the campaign's repository: a run
    has no network, and a module or console script the repository provides itself is
    never a package to install (a released copy would shadow every trial's code)."""
    project = own_project(repo) if repo.is_dir() else None
    scripts = project.scripts if project else {}
    for finding in findings:
        key = finding.signature.partition(":")[2]
        if finding.category == "missing_module" and (where := _own_module(repo, key)):
            finding.detail = (f"'{key}' is the repository's own module ({where}), which the lab never installs: "
                              "every trial runs its own copy")
            root = where.split("/")[0] if where.startswith("src/") else "."
            finding.fixes = [f"put {root}/ first on sys.path before the import (the evaluator: "
                             f"sys.path.insert(0, '{root}')), or run the command from the directory that holds it"
                             if root != "." else "run the command from the repository root (the export's root), "
                             "or put the module's directory on sys.path in the evaluator",
                             f"do not add '{key}' with overrides.packages: a released copy would run instead of "
                             "the trial's code"]
        elif finding.category == "missing_file" and key in scripts:
            finding.detail = (f"'{key}' is a console script of the repository's own package, which the lab never "
                              f"installs: it points to {scripts[key]}")
            module, _, function = scripts[key].partition(":")
            in_src = (_own_module(repo, module.split(".")[0]) or "").startswith("src/")
            finding.fixes = [f"call it from the evaluator: from {module} import {function}"
                             + (" (after sys.path.insert(0, 'src'))" if in_src else ""),
                             f"or run `python -m {module}` if the module calls {function} when run as a script"]
        elif finding.category == "network_unreachable":
            finding.detail = "the run tried to reach the network, which runs do not have"
            finding.fixes = ["bring the data the code downloads with the campaign (campaign_create overlay.files), "
                             "at the path where the code looks before downloading",
                             "or carve it from the repository's own data (overlay.splits)"]
    return findings


def known_fixes(lab: Lab, signature: str, limit: int = 5) -> list[dict]:
    """Fixes recorded for ``signature`` (any campaign): ones that worked first, newest first."""
    rows = lab.db.query(
        """SELECT id, fix, worked, campaign_id, env_id, run_id, updated_at FROM failure_memories
           WHERE signature = ? AND fix != '' ORDER BY worked = 1 DESC, worked IS NULL, updated_at DESC LIMIT ?""",
        [signature, limit])
    return [{"memory_id": r["id"], "fix": r["fix"], "worked": None if r["worked"] is None else bool(r["worked"]),
             "campaign_id": r["campaign_id"], "env_id": r["env_id"], "run_id": r["run_id"], "at": r["updated_at"]}
            for r in rows]


def remember(lab: Lab, findings: list[Finding], *, campaign_id: int | None, env_id: str | None = None,
             run_id: int | None = None) -> list[Finding]:
    """Store each finding as a failure memory (once per env/run) and attach known fixes."""
    stamp = ledger.now()
    for finding in findings:
        finding.known_fixes = known_fixes(lab, finding.signature)
        existing = lab.db.execute(
            "SELECT id FROM failure_memories WHERE signature = ? AND env_id IS ? AND run_id IS ?",
            [finding.signature, env_id, run_id]).fetchone()
        row = {"signature": finding.signature, "detail": finding.detail, "evidence": ledger.dumps(finding.evidence),
               "campaign_id": campaign_id, "env_id": env_id, "run_id": run_id, "updated_at": stamp}
        if existing:
            lab.db["failure_memories"].update(existing[0], row)
            finding.memory_id = existing[0]
        else:
            finding.memory_id = lab.db["failure_memories"].insert(row | {"fix": "", "created_at": stamp}).last_pk
    return findings


def diagnose_env_failure(lab: Lab, env_id: str) -> list[Finding]:
    """Classify a failed build's log, remember the findings, and store them on the env."""
    row = lab.db.execute("SELECT log_path, campaign_id FROM environments WHERE id = ?", [env_id]).fetchone()
    log = Path(row[0]).read_text(errors="replace") if row and row[0] and Path(row[0]).exists() else ""
    findings = remember(lab, classify(log), campaign_id=row[1] if row else None, env_id=env_id)
    lab.db["environments"].update(env_id, {"diagnostics": ledger.dumps(
        [{"signature": f.signature, "evidence": f.evidence[:2], "fixes": f.fixes} for f in findings])})
    return findings


def spec_change(old: dict, new: dict) -> str:
    """What a rebuild changed, in words: the fix a failure memory records."""
    parts = []
    if old.get("python") != new.get("python"):
        parts.append(f"python {old.get('python')} -> {new.get('python')}")
    for field, label in (("requirements", "requirements"), ("system_packages", "system packages")):
        before, after = set(old.get(field, [])), set(new.get(field, []))
        changes = [f"+{x}" for x in sorted(after - before)] + [f"-{x}" for x in sorted(before - after)]
        if changes:
            parts.append(f"{label}: {', '.join(changes)}")
    for field in ("base", "docker_base", "backend"):
        if old.get(field) != new.get(field):
            parts.append(f"{field} {old.get(field)} -> {new.get(field)}")
    return "; ".join(parts)


def record_fix_outcome(lab: Lab, env, fixes: str | None, campaign_id: int | None) -> None:
    """After a build meant to repair ``fixes`` (default: the campaign's last failed
    environment), record the spec change on that environment's failure memories and
    whether it worked."""
    if fixes is None and campaign_id is not None:
        row = lab.db.execute(
            "SELECT id FROM environments WHERE campaign_id = ? AND status = 'failed' AND id != ? "
            "ORDER BY ended_at DESC LIMIT 1", [campaign_id, env.id]).fetchone()
        fixes = row[0] if row else None
    if fixes is None or fixes == env.id:
        return
    old = lab.db.execute("SELECT spec FROM environments WHERE id = ?", [fixes]).fetchone()
    if old is None:
        return
    change = spec_change(ledger.loads(old[0]), env.spec.model_dump())
    if not change:
        return
    lab.db.execute(
        "UPDATE failure_memories SET fix = ?, worked = ?, updated_at = ? WHERE env_id = ? AND worked IS NULL",
        [change, 1 if env.status == "ready" else 0, ledger.now(), fixes])


def _run_log(lab: Lab, run_id: int) -> tuple[str, int | None]:
    row = lab.db.execute("SELECT run_dir, campaign_id FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        raise NotFound(f"no run with id {run_id}", hint="list runs with run_wait")
    run_dir = Path(row[0]) if row[0] else lab.path("runs", run_id)
    # The run log keeps its head and tail in separate files (see runs/logcap.py).
    parts = [run_dir / name for name in ("output.head", "output.tail.prev", "output.tail", "output.log")]
    text = "".join(p.read_text(errors="replace") for p in parts if p.exists())
    return text, row[1]


class DiagnoseIn(BaseModel):
    env: str | None = Field(None, description="a failed build")
    run: int | None = Field(None, description="a failed run")
    log: str | None = Field(None, max_length=MAX_LOG_CHARS, description="a log (not remembered)")
    memory: int | None = Field(None, description="failure memory id")
    fix: str | None = Field(None, min_length=1, max_length=2000, description="what was changed")
    worked: bool | None = None


class Diagnosis(BaseModel):
    findings: list[Finding]
    summary: str = Field(description="one line: the signatures found, or that none matched")


class FixRecordOut(BaseModel):
    memory: int
    signature: str
    fix: str
    worked: bool


def _mode(args: DiagnoseIn) -> str:
    """Which of env_diagnose's modes the arguments ask for; InvalidInput unless exactly one."""
    sources = [k for k in ("env", "run", "log") if getattr(args, k) is not None]
    record = [k for k in ("memory", "fix", "worked") if getattr(args, k) is not None]
    if record and sources:
        raise InvalidInput(f"{', '.join(record)} record a fix; {', '.join(sources)} diagnose a log: give one or the other",
                           hint="diagnose with exactly one of env, run or log; record with memory, fix and worked")
    if record:
        missing = [k for k in ("memory", "fix", "worked") if getattr(args, k) is None]
        if missing:
            raise InvalidInput(f"recording a fix needs memory, fix and worked; missing {', '.join(missing)}",
                               hint="pass " + ", ".join(missing) + " (memory ids come from env_diagnose's findings)")
        return "record"
    if len(sources) != 1:
        raise InvalidInput("give exactly one of env, run or log" + (f" (got {', '.join(sources)})" if sources else ""),
                           hint="or memory, fix and worked to record whether a fix worked")
    return sources[0]


@tool(idempotent=True)
def env_diagnose(lab: Lab, args: DiagnoseIn) -> Diagnosis | FixRecordOut:
    """Classify a failed build or run (env, run or log), or record whether a fix for a memory worked.

    Diagnose (exactly one of env, run or log): classify a failed environment build or
    run from its log: missing module, no matching distribution, version conflict,
    missing compiler/header, CUDA/driver mismatch, sandbox base image missing, network
    unreachable, disk full, out of memory. Each finding has evidence lines and concrete
    fixes, plus fixes that worked before for the same signature (in any campaign) - try
    those first. Findings from env or run are stored as failure memories (memory_id); a
    log given as text is not remembered.

    Record (memory, fix and worked, all three): the fix tried for a failure memory and
    whether it worked, so the next diagnosis of the same signature (any campaign) offers
    it first. (env_build records this on its own when it rebuilds a failed environment
    with a changed spec.)"""
    mode = _mode(args)
    if mode == "record":
        return _record_fix(lab, args.memory, args.fix, args.worked)
    if mode == "env":
        row = lab.db.execute("SELECT status FROM environments WHERE id = ?", [args.env]).fetchone()
        if row is None:
            raise NotFound(f"no environment {args.env!r}", hint="list environments with env_get")
        findings = diagnose_env_failure(lab, args.env)
    elif mode == "run":
        text, campaign_id = _run_log(lab, args.run)
        findings = classify(text)
        if campaign_id is not None:
            findings = in_run(findings, campaign_repo(lab, campaign_id))
        findings = remember(lab, findings, campaign_id=campaign_id, run_id=args.run)
    else:
        findings = classify(args.log or "")
        for finding in findings:
            finding.known_fixes = known_fixes(lab, finding.signature)
    summary = ", ".join(f.signature for f in findings) or "no known error signature in the log; read its tail"
    return Diagnosis(findings=findings, summary=summary)


def _record_fix(lab: Lab, memory: int, fix: str, worked: bool) -> FixRecordOut:
    """Record the fix tried for a failure memory and whether it worked."""
    row = lab.db.execute("SELECT signature FROM failure_memories WHERE id = ?", [memory]).fetchone()
    if row is None:
        raise InvalidInput(f"no failure memory {memory}", hint="memory ids come from env_diagnose")
    lab.db["failure_memories"].update(memory, {"fix": fix, "worked": int(worked), "updated_at": ledger.now()})
    return FixRecordOut(memory=memory, signature=row[0], fix=fix, worked=worked)
