"""The lab itself: a plain Python library that never imports MCP.

Every MCP tool is a function here taking ``(lab, args)`` and returning a pydantic
model; ``tools.registry`` lists them for the server and the CLI.
"""

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
"""Where skills/, sandbox_images/, clients/ and examples/ live: the repository root in a
checkout, the ``sotalab`` package directory in an installed wheel."""


def data_path(*parts: str) -> Path:
    """A bundled data file or folder (skills, sandbox images, client configs, examples)."""
    return PACKAGE_ROOT.joinpath(*parts)
