"""The repository as a package of its own: its name, where its packages import from, and
its console scripts, read from pyproject.toml or setup.py (never run).

The lab never installs the repository, since an environment is shared by every trial and
an installed copy would run instead of each trial's code. Detection (``envs``) and
``env_diagnose`` read this to say what that means: a ``src/`` layout imports only with
``src`` on ``sys.path``, and a console script does not exist, so an evaluator calls the
function it points to.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel, Field


class Project(BaseModel):
    """The repository as a package of its own, read from pyproject.toml or setup.py (never run)."""

    name: str | None = Field(None, description="its distribution name")
    import_root: str = Field(".", description="directory its packages import from: 'src' for a src/ layout")
    packages: list[str] = Field(default_factory=list, description="its top-level packages there")
    scripts: dict[str, str] = Field(default_factory=dict, description="console scripts: name -> module:function")


def _setup_py_literals(path: Path) -> dict:
    """Literal keyword arguments of setup.py's setup() call (name, entry_points, package_dir)."""
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, OSError):
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("name", "entry_points", "package_dir"):
            try:
                found[node.arg] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                pass  # not a literal: setup.py computes it
    return found


def own_project(root: Path) -> Project | None:
    """The repository's own distribution, when pyproject.toml ([project] or [tool.poetry])
    or setup.py names one; None for a plain collection of scripts."""
    import tomllib  # 80 ms to import: not at server start

    name, scripts = None, {}
    if (root / "pyproject.toml").is_file():
        try:
            data = tomllib.loads((root / "pyproject.toml").read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        project = data.get("project") or data.get("tool", {}).get("poetry") or {}
        declared = project.get("scripts") if isinstance(project, dict) else None
        name = project.get("name") if isinstance(project, dict) else None
        scripts = {str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else {}
    if (root / "setup.py").is_file():
        literals = _setup_py_literals(root / "setup.py")
        name = name or (literals.get("name") if isinstance(literals.get("name"), str) else None)
        entry_points = literals.get("entry_points")
        lines = entry_points.get("console_scripts", []) if isinstance(entry_points, dict) else []
        for line in lines if isinstance(lines, (list, tuple)) else []:
            if isinstance(line, str) and "=" in line:
                script, target = line.split("=", 1)
                scripts.setdefault(script.strip(), target.strip())
        package_dir = literals.get("package_dir")
        if isinstance(package_dir, dict) and package_dir.get("") == "src":
            name = name or root.name
    if name is None:
        return None
    src = root / "src"
    src_packages = sorted(p.name for p in src.iterdir() if (p / "__init__.py").is_file()) if src.is_dir() else []
    if src_packages and not (src / "__init__.py").is_file():
        return Project(name=str(name), import_root="src", packages=src_packages, scripts=scripts)
    packages = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file() and p.name not in ("tests", "test"))
    return Project(name=str(name), packages=packages, scripts=scripts)
