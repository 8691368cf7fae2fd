"""Builds the MCP server: every lab tool from the registry, plus resources.

Thin by design: validation, journaling and the lab's behaviour live in
``sotalab.tools``; this module only adapts them to MCP.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import anyio
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_context
from fastmcp.tools import Tool
from fastmcp.tools.base import ToolResult
from mcp.types import ToolAnnotations

from sotalab.tools import jobs
from sotalab.tools.errors import LabError
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke
from sotalab.tools.registry import SHAPE_IN, ToolSpec, all_tools

from .content import to_tool_result
from .dashboard import register as register_dashboard
from .dashboard import tool_meta
from .roles import register_roles
from .toolsets import select

INSTRUCTIONS = """sotalab is an ML research lab bench: it reproduces a paper's result, runs
improvement trials, and audits every claimed gain. Scores come only from the server's
own evaluation runs (trial_evaluate); no tool accepts a score from you. Start with
lab_status, then campaign_create / campaign_get. Long work is start-and-poll: a tool
that "returns a job" answers at once with its handle; follow it with job_wait(job=...)
until its status is no longer running: the tool's result is there. Lists and long texts
are paged: `limit` caps the items (fewer when long ones fill one bounded result) and
`cursor` takes the previous answer's next_cursor."""

JOB_NOTE = " Returns a job: follow it with job_wait."


def sotalab_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sotalab")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


class LabTool(Tool):
    """An MCP tool that runs one registry entry through the shared invoke path; a job
    tool starts it in the background instead and answers with the job's handle."""

    spec: ToolSpec
    lab: Lab

    model_config = {"arbitrary_types_allowed": True}

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            if self.spec.job:
                job = await anyio.to_thread.run_sync(jobs.start, self.lab, self.spec.name, arguments)
                result = job.model_dump(mode="json")
            else:
                progress = _progress_reporter()
                result = await anyio.to_thread.run_sync(invoke, self.lab, self.spec.name, arguments, progress)
        except LabError as exc:
            raise ToolError(str(exc)) from None
        return to_tool_result(result)


def _progress_reporter():
    """A progress callback usable from the worker thread that runs the tool."""
    try:
        ctx = get_context()
    except RuntimeError:
        return lambda *a, **k: None

    def report(done: float, total: float | None = None, message: str | None = None) -> None:
        try:
            anyio.from_thread.run(ctx.report_progress, done, total, message)
        except Exception:
            pass  # a client that went away must not fail the tool

    return report


UNSENT_KEYWORDS = frozenset({"$defs", "title", "maxLength", "minLength", "pattern", "minItems", "maxItems",
                             "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "uniqueItems"})


def lean_schema(schema: dict) -> dict:
    """An input schema as sent to hosts, computed once per tool: what a model needs to
    call the tool, in as few tokens as hosts read portably.

    - ``$defs`` are inlined, so hosts that do not follow ``$ref`` see whole schemas
      (a recursive model keeps its ``$ref``).
    - An optional field is its plain type: ``anyOf [X, null]`` with ``default: null``
      becomes X and is simply not required. Type arrays (``["string", "null"]``) are
      what the Inspector's portability check flags, and the null branch tells a model
      nothing it needs.
    - No ``title``s (pydantic derives them from the names), no class docstrings of nested
      models (the field's own description says what it is there), descriptions on one line.
    - No length, pattern or range limits: every call is validated again on the server,
      whose error names the field and the limit, so these only cost every request tokens.
    - No defaults that say nothing an optional field does not: null, false, empty.
    """
    defs = schema.get("$defs", {})
    kept: dict[str, dict] = {}

    def resolve(node, stack: tuple[str, ...]):
        if isinstance(node, list):
            return [resolve(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in stack:  # recursion: keep the reference
                kept[name] = defs[name]
                return node
            rest = {k: v for k, v in node.items() if k != "$ref"}
            body = {k: v for k, v in defs[name].items() if k != "description"}
            return resolve(body, (*stack, name)) | resolve(rest, stack)
        out = {}
        for key, value in node.items():
            if key in UNSENT_KEYWORDS or (key == "default" and _says_nothing(value)):
                continue
            if key == "properties":  # a mapping of names to schemas: a property may be called "title"
                out[key] = {name: resolve(sub, stack) for name, sub in value.items()}
            elif key == "description" and isinstance(value, str):
                out[key] = " ".join(value.split())
            else:
                out[key] = resolve(value, stack)
        options = out.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            del out["anyOf"]
            out = (rest[0] | out) if len(rest) == 1 else out | {"anyOf": rest}
        return out

    lean = resolve(schema, ())
    if kept:
        lean["$defs"] = {name: resolve(body, (name,)) for name, body in kept.items()}
    else:  # a recursive model keeps its full schema: a signature would not end
        lean["properties"] = {name: as_signature(sub) for name, sub in lean.get("properties", {}).items()}
    return lean


PLAIN_TYPES = frozenset({"number", "integer", "string", "boolean"})


def _says_nothing(default) -> bool:
    """A default a model reads off an optional field anyway: absent means null, off, empty
    (0 is a value: ``gpus = 0`` says the run gets none)."""
    return default is None or default is False or (isinstance(default, (str, list, dict)) and not default)


def as_signature(node: dict) -> dict:
    """A parameter that is itself a structure (the campaign's evaluator, an environment's
    overrides) as one line of TypeScript-like signature in its description:
    ``{metric: string, direction: "max"|"min", target?: number, min_effect = 0.0}`` (a
    default shows a plain field's type and that it is optional). A nested JSON schema
    costs three to four times the tokens for the same shape. Hosts still validate the
    parameter's type, and the server validates every field again, naming the field and
    what it expected; `sotalab tools --json` has the full schemas."""
    if not (_is_structure(node) or (node.get("type") == "array" and _is_structure(node.get("items", {})))):
        return node
    if SHAPE_IN in node:  # spelled out in another tool's schema: refer to it, not again
        return {"type": node["type"],
                "description": " ".join(filter(None, [node.get("description"), f"(shape as in {node[SHAPE_IN]})"]))}
    description = " ".join(filter(None, [node.get("description"), _signature(node)]))
    return {"type": node["type"], "description": description}


def _is_structure(node: dict) -> bool:
    return node.get("type") == "object" and ("properties" in node or isinstance(node.get("additionalProperties"), dict))


def _signature(node: dict) -> str:
    if "enum" in node:
        return "|".join(json.dumps(value) for value in node["enum"])
    if "anyOf" in node:
        return "|".join(_signature(option) for option in node["anyOf"])
    kind = node.get("type")
    if kind == "array":
        return f"{_signature(node.get('items', {}))}[]"
    if kind == "object" and "properties" in node:
        required = set(node.get("required", ()))
        fields = []
        for name, sub in node["properties"].items():
            if _says_nothing(sub.get("default")):
                fields.append(f"{name}{'' if name in required else '?'}: {_signature(sub)}")
            elif sub.get("type") in PLAIN_TYPES and "enum" not in sub:  # the default shows the type
                fields.append(f"{name} = {json.dumps(sub['default'])}")
            else:
                fields.append(f"{name}: {_signature(sub)} = {json.dumps(sub['default'])}")
        return "{" + ", ".join(fields) + "}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"{{[name]: {_signature(node['additionalProperties'])}}}"
    return kind or "any"


def to_mcp_tool(spec: ToolSpec, lab: Lab) -> LabTool:
    """No output schema: results still come as structuredContent, but an outputSchema
    per tool more than doubled what every host loads and re-sends (58% of tools/list),
    for clients that mostly do not use it. `sotalab tools --json` has the full models."""
    return LabTool(
        name=spec.name,
        description=spec.summary + (JOB_NOTE if spec.job else ""),
        parameters=lean_schema(spec.input_model.model_json_schema()),
        output_schema=None,
        annotations=ToolAnnotations(
            readOnlyHint=spec.read_only,
            destructiveHint=spec.destructive,
            idempotentHint=spec.idempotent,
            openWorldHint=spec.open_world,
        ),
        meta=tool_meta(spec.name),
        spec=spec,
        lab=lab,
    )


RUN_SERVICES_DELAY_S = 1.0


def run_services(lab: Lab):
    """For a long-lived server: reconcile runs a previous server left behind, then keep
    the run queue moving.

    They start a moment after the server does, in a thread: on a small machine their
    imports and the run launcher would otherwise slow the host's first tools/list.
    Nothing is stale meanwhile: every run tool collects ended runs when it is called.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_server):
        from sotalab.tools.runs.queue import start_dispatcher
        from sotalab.tools.runs.reconcile import reconcile

        dispatchers = []
        stopping = threading.Event()

        def start():
            if stopping.wait(RUN_SERVICES_DELAY_S):
                return
            reconcile(lab)
            dispatchers.append(start_dispatcher(lab))

        starter = threading.Thread(target=start, name="sotalab-run-services", daemon=True)
        starter.start()
        try:
            yield {}
        finally:
            stopping.set()
            starter.join(timeout=30)
            for dispatcher in dispatchers:
                dispatcher.stop()

    return lifespan


def build_server(lab: Lab, long_lived: bool = False, toolset: str = "all") -> FastMCP:
    """The MCP server for ``lab`` offering the tools ``toolset`` selects (see toolsets.py).
    ``long_lived`` (``sotalab serve``) also reconciles runs at start and dispatches the
    run queue in the background."""
    mcp = FastMCP("sotalab", instructions=INSTRUCTIONS, version=sotalab_version(), mask_error_details=True,
                  dereference_schemas=False, lifespan=run_services(lab) if long_lived else None)
    specs = all_tools()
    offered = select(toolset, set(specs))
    for spec in specs.values():
        if spec.name in offered:
            mcp.add_tool(to_mcp_tool(spec, lab))
    register_roles(mcp, lambda: lab)
    register_dashboard(mcp, lab)

    @mcp.resource("sotalab://campaigns/{campaign_id}", mime_type="application/json",
                  description="A campaign: objective, evaluator, budgets, spend")
    def campaign_resource(campaign_id: int) -> str:
        return _resource(lab, "campaign_get", {"campaign": campaign_id})

    @mcp.resource("sotalab://trials/{trial_id}", mime_type="application/json",
                  description="A trial: lineage position, commit, evaluator-owned score, label")
    def trial_resource(trial_id: int) -> str:
        return _resource(lab, "trial_get", {"trial": trial_id})

    return mcp


def _resource(lab: Lab, tool: str, arguments: dict) -> str:
    try:
        return json.dumps(invoke(lab, tool, arguments), indent=1)
    except LabError as exc:
        from fastmcp.exceptions import ResourceError

        raise ResourceError(str(exc)) from None
