"""Every lab tool, described once, for the MCP server and the CLI alike.

A tool is a plain function ``fn(lab, args) -> OutputModel`` (or ``fn(lab, args,
progress)`` for long work) whose ``args`` is a pydantic model. Decorate it with
``@tool(...)`` and list its module in ``TOOL_MODULES``.

Work that can take longer than a few seconds is declared ``@tool(job=True)``: called from
Python it still runs to the end and returns its model, but over MCP it answers at once with
a job handle that ``job_wait`` follows (see ``tools/jobs.py``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Protocol, get_type_hints

from pydantic import BaseModel

TOOL_MODULES = [
    "campaigns",
    "trials",
    "ideas",
    "notes",
    "status",
    "papers.tools",
    "repos",
    "workspaces",
    "workspace_files",
    "envs",
    "diagnose",
    "runs.tools",
    "execution",
    "leases",
    "surfaces",
    "parents",
    "evaluation.pipeline",
    "audit.tools",
    "campaign_view",
    "report",
    "jobs",
]


class Progress(Protocol):
    def __call__(self, done: float, total: float | None = None, message: str | None = None) -> None: ...


def no_progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """The progress sink used where nobody listens (tests, plain library calls)."""


SHAPE_IN = "x-shape-in"  # json_schema_extra key: see shape_in()


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[..., BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel] | UnionType  # a union where one tool answers in several shapes (an item, a page)
    description: str  # the whole docstring, one paragraph per paragraph: `sotalab tools --json`
    summary: str  # its first paragraph: what hosts send a model
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    wants_progress: bool
    job: bool

    @property
    def shape_referents(self) -> set[str]:
        """The tools whose schemas spell out a structure this one's parameters only refer to."""
        return {field.json_schema_extra[SHAPE_IN] for field in self.input_model.model_fields.values()
                if isinstance(field.json_schema_extra, dict) and SHAPE_IN in field.json_schema_extra}

    def call(self, lab, args: BaseModel, progress: Progress = no_progress) -> BaseModel:
        if self.wants_progress:
            return self.fn(lab, args, progress)
        return self.fn(lab, args)


_SPECS: dict[str, ToolSpec] = {}


def shape_in(tool_name: str) -> dict:
    """``json_schema_extra`` for a parameter whose structure another tool's schema already
    spells out (campaign_update's objective is campaign_create's): hosts are sent the
    signature once, and this parameter refers to it. The server still validates it fully."""
    return {SHAPE_IN: tool_name}


def paragraphs(docstring: str | None) -> list[str]:
    """A docstring's paragraphs, each on one line: hosts show descriptions as they are,
    and hard line breaks from source indentation read as broken text there."""
    blocks = inspect.cleandoc(docstring or "").split("\n\n")
    return [" ".join(block.split()) for block in blocks if block.strip()]


def tool(*, read_only: bool = False, destructive: bool = False, idempotent: bool = False,
         open_world: bool = False, name: str | None = None, job: bool = False):
    """Register a lab tool. The annotations must be honest: they reach every MCP host.

    ``job=True``: the work can outlast a host's tool-call timeout, so over MCP the call
    starts a background job and returns its handle at once (``tools/jobs.py``).
    """

    def register(fn: Callable[..., BaseModel]) -> Callable[..., BaseModel]:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        spec = ToolSpec(
            name=name or fn.__name__,
            fn=fn,
            input_model=hints[params[1]],
            output_model=hints["return"],
            description="\n\n".join(paragraphs(fn.__doc__)),
            # Every host re-sends every tool's description with every model request, so
            # the first paragraph says what the tool does and how to call it; the rest
            # is for readers and `sotalab tools`.
            summary=(paragraphs(fn.__doc__) or [""])[0],
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent or read_only,
            open_world=open_world,
            wants_progress=len(params) > 2,
            job=job,
        )
        if spec.name in _SPECS and _SPECS[spec.name].fn is not fn:
            raise RuntimeError(f"tool {spec.name!r} registered twice")
        _SPECS[spec.name] = spec
        return fn

    return register


def all_tools() -> dict[str, ToolSpec]:
    """Every registered tool by name, importing the tool modules on first use."""
    for module in TOOL_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return dict(_SPECS)

