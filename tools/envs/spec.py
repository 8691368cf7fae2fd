"""Environment specs: detected from a repository, adjusted by overrides, hashed into an id.

Detection reads, in this order, requirements*.txt, pyproject.toml ([project]
dependencies), setup.cfg (install_requires), setup.py (a literal install_requires
list), environment.yml (python version and the pip section), and as a last resort a
``pip install`` line in the README. The repository itself is never installed: an
environment must not depend on any one trial's code (``repo_project`` says when it is a
package of its own).
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ..errors import InvalidInput

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_DEB_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
_PYTHON = re.compile(r"^3\.\d{1,2}(\.\d{1,3})?$")
_INDEX_URL = re.compile(r"^(https?|file)://[^\s]+$")
MAX_INCLUDE_DEPTH = 5


def canonical_name(requirement: str) -> str:
    """PEP 503 name of a requirement line, e.g. 'Scikit_Learn>=1' -> 'scikit-learn'."""
    match = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement.strip().lower()


def check_requirement(line: str) -> str:
    """A requirement a caller or a repository gave: no pip options, no local paths."""
    line = " ".join(line.split())
    if not line or line.startswith("-") or line.startswith((".", "/", "~")) or "\0" in line:
        raise InvalidInput(f"requirement {line!r} is not a package requirement",
                           hint="give PEP 508 requirements like 'numpy>=1.26' (no pip options, no paths)")
    return line


class Overrides(BaseModel):
    """What the caller changes on top of the detected spec."""

    python: str | None = Field(None, description="Python version, e.g. '3.11'")
    packages: list[str] = Field(default_factory=list, max_length=200, description="extra requirements, e.g. 'tqdm'")
    pins: dict[str, str] = Field(default_factory=dict, description="package -> exact version; replaces any detected requirement for it")
    remove: list[str] = Field(default_factory=list, description="packages to drop from the detected requirements")
    system_packages: list[str] = Field(default_factory=list, max_length=100, description="Debian/Ubuntu packages (docker backend only)")
    base: Literal["cpu", "cuda"] = Field("cpu", description="sandbox image family (docker backend)")
    docker_base: str | None = Field(None, description="image the sandbox image is built FROM; default: $SOTALAB_SANDBOX_BASE or sotalab-base:bookworm (cpu)")
    index_url: str | None = Field(None, max_length=500, description="package index instead of PyPI")
    extra_index_urls: list[str] = Field(default_factory=list, max_length=10, description="indexes searched before "
                                        "the main one, e.g. https://download.pytorch.org/whl/cpu for a CPU-only torch")
    find_links: list[str] = Field(default_factory=list, max_length=10, description="directories (absolute paths, "
                                  "venv backend) or URLs of wheel files to install from, e.g. a local torch wheel")

    @field_validator("index_url", "extra_index_urls", "find_links")
    @classmethod
    def _indexes(cls, v):
        for url in [v] if isinstance(v, str) else v or []:
            if not (_INDEX_URL.match(url) or (url.startswith("/") and not any(c.isspace() for c in url))):
                raise ValueError(f"{url!r} is not an http(s):// or file:// URL or an absolute path")
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v):
        if v is not None and not _PYTHON.match(v):
            raise ValueError("python must look like '3.11' or '3.11.7'")
        return v

    @field_validator("system_packages")
    @classmethod
    def _debs(cls, v):
        for name in v:
            if not _DEB_PACKAGE.match(name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return v

    @field_validator("docker_base")
    @classmethod
    def _image(cls, v):
        if v is not None and (v.startswith("-") or not re.match(r"^[\w][\w./:@-]*$", v)):
            raise ValueError(f"{v!r} is not an image reference")
        return v


class EnvSpec(BaseModel):
    """A resolved spec: everything that decides what gets installed, and nothing else."""

    backend: Literal["venv", "docker"]
    python: str
    requirements: list[str]
    system_packages: list[str] = Field(default_factory=list)
    base: Literal["cpu", "cuda"] = "cpu"
    docker_base: str | None = None
    index_url: str | None = None
    extra_index_urls: list[str] = Field(default_factory=list)
    find_links: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="files the requirements were read from (not hashed)")

    def requirements_text(self) -> str:
        """The requirements file both backends install from: the index options first
        (uv reads them there), then one requirement a line."""
        options = [f"--index-url {self.index_url}"] if self.index_url else []
        options += [f"--extra-index-url {url}" for url in self.extra_index_urls]
        options += [f"--find-links {url}" for url in self.find_links]
        return "".join(f"{line}\n" for line in options + self.requirements) if self.requirements else ""

    def env_id(self) -> str:
        """Content hash of the spec: identical specs share one environment. Index options
        left at their defaults are not hashed, so specs made before they existed keep their ids."""
        keyed = self.model_dump(exclude={"sources"})
        for name in ("index_url", "extra_index_urls", "find_links"):
            if not keyed[name]:
                del keyed[name]
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()
        return f"{self.backend}-{digest[:16]}"


def _requirements_file(path: Path, root: Path, depth: int = 0) -> list[str]:
    """Requirement lines of a pip requirements file, following ``-r`` includes that stay
    inside ``root``. Options, editables, paths, URLs and per-line hashes are dropped."""
    found = []
    text = re.sub(r"\\\n", " ", path.read_text(errors="replace"))  # join continued lines
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        include = re.match(r"^(?:-r|--requirement)[=\s]*(\S+)$", line)
        if include:
            included = (path.parent / include.group(1)).resolve()
            if depth < MAX_INCLUDE_DEPTH and included.is_file() and root.resolve() in included.parents:
                found += _requirements_file(included, root, depth + 1)
            continue
        if line.startswith("-") or line.startswith((".", "/", "~")) or "://" in line:
            continue  # options, editables, paths and URLs: not something to pin by name
        found.append(" ".join(w for w in line.split() if not w.startswith("--hash")))
    return found


def _from_pyproject(path: Path) -> list[str]:
    import tomllib  # 80 ms to import: not at server start

    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    return list(data.get("project", {}).get("dependencies", []) or [])


def _from_setup_cfg(path: Path) -> list[str]:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
    except (configparser.Error, UnicodeDecodeError):
        return []
    raw = parser.get("options", "install_requires", fallback="")
    return [line.strip() for line in raw.splitlines() if line.strip() and not line.strip().startswith("#")]


def _from_setup_py(path: Path) -> list[str]:
    """install_requires=[...] when it is a literal list; setup.py is never executed."""
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else []
    return []


def _from_environment_yml(path: Path) -> tuple[str | None, list[str]]:
    """The python version and the pip section of a conda environment file (no YAML
    library needed for this subset)."""
    python, pip, in_pip, pip_indent = None, [], False, 0
    for raw in path.read_text(errors="replace").splitlines():
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if in_pip and stripped.startswith("- ") and indent > pip_indent:
            pip.append(stripped[2:].strip().strip("'\""))
            continue
        in_pip = False
        if stripped.startswith("- pip:"):
            in_pip, pip_indent = True, indent
        elif re.match(r"^- python\s*[=<>]", stripped):
            match = re.search(r"(3\.\d+)", stripped)
            python = match.group(1) if match else None
    return python, [p for p in pip if not p.startswith("-")]


_PIP_OPTIONS_WITH_VALUE = {"-r", "--requirement", "-e", "--editable", "-c", "--constraint", "-i", "--index-url",
                           "--extra-index-url", "-f", "--find-links", "--target", "-t", "--prefix"}


def _from_readme(path: Path) -> list[str]:
    """Package names from the first ``pip install`` line: options, their values, paths,
    URLs and anything after a shell separator are left out."""
    for line in path.read_text(errors="replace").splitlines():
        match = re.search(r"\bpip3? install\s+(.+)", line)
        if not match:
            continue
        found, skip_next = [], False
        for word in match.group(1).split():
            word = word.strip("`'\"")
            if word in ("&&", "|", ";", "||") or word.startswith("#"):
                break
            if skip_next or not word:
                skip_next = False
                continue
            if word in _PIP_OPTIONS_WITH_VALUE:
                skip_next = True
            elif not (word.startswith(("-", ".", "/", "~")) or "://" in word or word.endswith((".txt", ".whl"))):
                found.append(word)
        if found:
            return found
    return []


def detect(root: Path) -> tuple[str | None, list[str], list[str]]:
    """(python version or None, requirements, source files) found in ``root``."""
    python, requirements, sources = None, [], []

    def add(items: list[str], source: Path) -> None:
        if items:
            requirements.extend(items)
            sources.append(source.relative_to(root).as_posix())

    req_files = sorted(root.glob("requirements*.txt"))
    main = [p for p in req_files if p.name == "requirements.txt"]
    for path in main or req_files[:1]:
        add(_requirements_file(path, root), path)
    if (root / "pyproject.toml").is_file():
        add(_from_pyproject(root / "pyproject.toml"), root / "pyproject.toml")
    if (root / "setup.cfg").is_file():
        add(_from_setup_cfg(root / "setup.cfg"), root / "setup.cfg")
    if (root / "setup.py").is_file():
        add(_from_setup_py(root / "setup.py"), root / "setup.py")
    for name in ("environment.yml", "environment.yaml"):
        if (root / name).is_file():
            python, pip = _from_environment_yml(root / name)
            add(pip, root / name)
    if not requirements:
        for name in ("README.md", "README.rst", "README.txt", "README"):
            if (root / name).is_file():
                add(_from_readme(root / name), root / name)
                break
    return python, requirements, sources


def resolve(root: Path | None, overrides: Overrides, backend: str) -> EnvSpec:
    """The full spec: detected requirements (when ``root`` is given) plus overrides."""
    python, detected, sources = detect(root) if root is not None else (None, [], [])
    removed = {canonical_name(n) for n in overrides.remove} | {canonical_name(n) for n in overrides.pins}
    by_name: dict[str, str] = {}
    for line in detected + overrides.packages:
        line = check_requirement(line)
        if canonical_name(line) not in removed:
            by_name.setdefault(canonical_name(line), line)
    for name, version in overrides.pins.items():
        by_name[canonical_name(name)] = f"{canonical_name(name)}=={check_requirement(version)}"
    if overrides.system_packages and backend != "docker":
        raise InvalidInput("system_packages need the docker backend",
                           hint="pass backend='docker', or install them on the host")
    if backend == "docker" and any(link.startswith("/") for link in overrides.find_links):
        raise InvalidInput("find_links paths on the server are not visible to a Docker build",
                           hint="use the venv backend, or an https:// index (extra_index_urls) for docker")
    docker_base = None
    if backend == "docker":
        from .docker import default_base

        docker_base = overrides.docker_base or default_base(overrides.base)
    return EnvSpec(
        backend=backend,
        # A docker env uses the image's own python3 unless a version is asked for.
        python=overrides.python or python or (
            "system" if backend == "docker" else f"{sys.version_info.major}.{sys.version_info.minor}"),
        requirements=sorted(by_name.values(), key=canonical_name),
        system_packages=sorted(set(overrides.system_packages)),
        base=overrides.base,
        docker_base=docker_base,
        index_url=overrides.index_url,
        extra_index_urls=overrides.extra_index_urls,
        find_links=overrides.find_links,
        sources=sources,
    )
