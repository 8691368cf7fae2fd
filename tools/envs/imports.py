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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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
                                   "huggingface_hub": "huggingface-hub",
                                   # hydra on PyPI is an unrelated bloom-filter library
                                   "hydra": "hydra-core", "lightning_utilities": "lightning-utilities"}
# Submodules that need a distribution of their own (makemore's SummaryWriter needs tensorboard).
SUBMODULES = {"torch.utils.tensorboard": "tensorboard", "tensorflow.keras": "tensorflow"}
# Names that are part of the interpreter or of a distribution already counted.
NOT_DISTRIBUTIONS = set(sys.stdlib_module_names) | {"__future__", "setuptools", "distutils", "pkg_resources"}
# Distributions that a requirement brings as its own dependency: code that imports them
# directly needs nothing more once one of these is required.
COMES_WITH = {"omegaconf": {"hydra-core"}, "antlr4-python3-runtime": {"hydra-core"},
              "lightning-utilities": {"lightning", "pytorch-lightning", "torchmetrics"},
              "torchmetrics": {"lightning", "pytorch-lightning"}, "fsspec": {"lightning", "pytorch-lightning"},
              "packaging": {"lightning", "pytorch-lightning", "torchmetrics", "matplotlib", "pytest"},
              "filelock": {"torch"}, "jinja2": {"torch"}, "networkx": {"torch"}, "sympy": {"torch"},
              "joblib": {"scikit-learn"}, "scipy": {"scikit-learn"}, "threadpoolctl": {"scikit-learn"},
              "pytz": {"pandas"}, "python-dateutil": {"pandas", "matplotlib"}, "pyparsing": {"matplotlib"},
              "pillow": {"matplotlib", "torchvision"}, "iniconfig": {"pytest"}, "pluggy": {"pytest"},
              "markdown-it-py": {"rich"}, "pygments": {"rich", "pytest"}}
TEST_DIRS = {"tests", "test", "testing"}
GUARD_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass
class ImportScan:
    """What the code imports (``imports``: name -> up to three files), which names code
    outside the tests imports (``outside_tests``), and which of those some file needs:
    imported outside the tests and without a guard (``needed``)."""

    imports: dict[str, list[str]] = field(default_factory=dict)
    outside_tests: set[str] = field(default_factory=set)
    needed: set[str] = field(default_factory=set)


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


def _is_test_file(rel: PurePosixPath) -> bool:
    return (any(part in TEST_DIRS for part in rel.parts[:-1]) or rel.name == "conftest.py"
            or rel.name.startswith("test_") or rel.stem.endswith("_test"))


def _guards_import(node: ast.AST) -> bool:
    """Whether a ``try`` or ``if`` makes the imports in its body optional. A handler that
    raises again ("please install X") makes nothing optional."""
    if isinstance(node, (ast.Try, ast.TryStar)):
        for handler in node.handlers:
            caught = handler.type
            names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
            reraises = any(isinstance(n, ast.Raise) for n in ast.walk(handler))
            if not reraises and (caught is None or any(isinstance(n, ast.Name) and n.id in GUARD_ERRORS
                                                       for n in names)):
                return True
        return False
    if isinstance(node, ast.If):
        words = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
        words |= {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
        return bool(words & {"find_spec", "TYPE_CHECKING", "find_loader"})
    return False


def _imports(tree: ast.AST):
    """(dotted name, optional) of each absolute import in ``tree`` (walked with a stack:
    generated code nests deeper than Python's recursion limit)."""
    stack = [(tree, False)]
    while stack:
        node, optional = stack.pop()
        if isinstance(node, ast.Import):
            yield from ((alias.name, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.module, optional
        elif isinstance(node, (ast.Try, ast.TryStar, ast.If)) and _guards_import(node):
            stack += [(child, True) for child in node.body]
            rest = [*getattr(node, "handlers", []), *node.orelse, *getattr(node, "finalbody", [])]
            stack += [(child, optional) for child in rest]
        else:
            stack += [(child, optional) for child in ast.iter_child_nodes(node)]


def scan_imports(root: Path) -> ImportScan:
    """Top-level names (and SUBMODULES) of the absolute imports in the repository's
    Python files that are neither the standard library nor the repository's own, each
    with up to three files that import it, and which of them are needed."""
    files = _python_files(root)
    local = _local_modules(root, files)
    scan = ImportScan()
    for path in files:
        if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # Python 2 code, a template, or generated code nested past the parser's limit
        rel = PurePosixPath(path.relative_to(root).as_posix())
        in_tests = _is_test_file(rel)
        for name, optional in _imports(tree):
            top = name.split(".")[0]
            if top in NOT_DISTRIBUTIONS or top in local or not top.isidentifier():
                continue
            wanted = [top] + [sub for sub in SUBMODULES if name == sub or name.startswith(sub + ".")]
            for key in wanted:
                where = scan.imports.setdefault(key, [])
                if str(rel) not in where and len(where) < 3:
                    where.append(str(rel))
                if not in_tests:
                    scan.outside_tests.add(key)
                    if not optional:
                        scan.needed.add(key)
    scan.imports = dict(sorted(scan.imports.items()))
    return scan


def imported_names(root: Path) -> dict[str, list[str]]:
    """Every third-party import of the repository (``scan_imports(root).imports``)."""
    return scan_imports(root).imports


def distribution_for(import_name: str) -> str:
    """The distribution to install for an import name (top-level, or a SUBMODULES key)."""
    return SUBMODULES.get(import_name) or DISTRIBUTIONS.get(import_name, import_name)
