"""Which interpreter and packages a run uses, chosen explicitly and visible in its sandbox.

A venv environment puts its ``bin/`` first on the run's PATH; the sandbox mounts the
venv and its base interpreter's prefix read-only (``sandbox.interpreter_roots``). A
Docker environment runs in its image. No environment: the server's own Python, named in
the run's record. The queue refuses a run whose interpreter directory is gone, so no run
ever falls back to whichever Python the PATH would find.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from ..home import Lab


@dataclass
class RunEnvironment:
    description: str
    settings: dict = field(default_factory=dict)  # RunRequest fields: executor/image or path_prefix
    env: dict[str, str] = field(default_factory=dict)


def server_python() -> RunEnvironment:
    return RunEnvironment(f"server python {sys.executable}", {"path_prefix": [str(Path(sys.executable).parent)]})


def for_env_id(lab: Lab, env_id: str | None) -> RunEnvironment:
    """The settings for environment ``env_id`` (must be ready), or the server's Python."""
    if not env_id:
        return server_python()
    from .. import envs

    env = envs.get_env(lab, env_id)
    if env.status != "ready" or not env.location:
        raise LabError(f"environment {env.id} is {env.status}, not ready",
                       hint="see env_get, then rebuild it with env_build")
    if env.backend == "docker":
        return RunEnvironment(f"docker image {env.location}", {"executor": "docker", "image": env.location})
    bin_dir = envs.python_path(lab, env.id).parent
    return RunEnvironment(f"venv {env.location}", {"path_prefix": [str(bin_dir)]}, {"VIRTUAL_ENV": env.location})
