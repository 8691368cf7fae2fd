"""What the code imports, for repositories whose requirements files say less than their code.

A research repository often has no requirements file at all ("PyTorch is the only
requirement", says makemore's README, which also imports tensorboard). The imports in its
Python files say what it needs: the top-level names of absolute imports, less the
standard library and the repository's own modules, mapped to the distribution that
provides them (``sklearn`` -> ``scikit-learn``). The files are parsed, never run.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from ..diagnose import MODULE_PACKAGES

MAX_FILES = 2000
MAX_FILE_BYTES = 1024 * 1024
SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "site-packages", "__pycache__", "build", "dist"}
# Import names whose distribution differs, beyond the ones env_diagnose already knows.
DISTRIBUTIONS = MODULE_PACKAGES | {"tensorboardX": "tensorboardX", "mpl_toolkits": "matplotlib",
                                   "pkg_resources": "setuptools", "faiss": "faiss-cpu", "OpenGL": "PyOpenGL",
                                   "wx": "wxPython", "sentencepiece": "sentencepiece", "Bio": "biopython",
                                   "lightning": "lightning", "pl_bolts": "lightning-bolts", "jax": "jax[cpu]",
                                   "tensorflow_datasets": "tensorflow-datasets", "torch_geometric": "torch-geometric",
                                   "huggingface_hub": "huggingface-hub"}
# Submodules that need a distribution of their own (makemore's SummaryWriter needs tensorboard).
SUBMODULES = {"torch.utils.tensorboard": "tensorboard", "tensorflow.keras": "tensorflow"}
# Names that are part of the interpreter or of a distribution already counted.
NOT_DISTRIBUTIONS = set(sys.stdlib_module_names) | {"__future__", "setuptools", "distutils", "pkg_resources"}


def _python_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
        if len(found) >= MAX_FILES:
            break
    return found[:MAX_FILES]


def _local_modules(root: Path, files: list[Path]) -> set[str]:
    """Names the repository provides itself: its modules and packages at any depth (code
    run from a subdirectory imports its siblings by their bare names)."""
    names = {f.stem for f in files}
    names |= {f.parent.name for f in files if f.name == "__init__.py"}
    names |= {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    return names


def imported_names(root: Path) -> dict[str, list[str]]:
    """Top-level names (and SUBMODULES) of the absolute imports in the repository's
    Python files that are neither the standard library nor the repository's own, each
    with up to three files that import it."""
    files = _python_files(root)
    local = _local_modules(root, files)
    found: dict[str, list[str]] = {}
    for path in files:
        if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue  # Python 2 code or a template: its imports are not ours to guess
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in NOT_DISTRIBUTIONS or top in local or not top.isidentifier():
                    continue
                wanted = [top] + [sub for sub in SUBMODULES if name == sub or name.startswith(sub + ".")]
                for key in wanted:
                    where = found.setdefault(key, [])
                    rel = path.relative_to(root).as_posix()
                    if rel not in where and len(where) < 3:
                        where.append(rel)
    return dict(sorted(found.items()))


def distribution_for(import_name: str) -> str:
    """The distribution to install for an import name (top-level, or a SUBMODULES key)."""
    return SUBMODULES.get(import_name) or DISTRIBUTIONS.get(import_name, import_name)
