"""One path for every tool call, from MCP and from the CLI: validate, run, journal.

The journal records each call (tool, a digest of its arguments, duration, ok or the
error) so a campaign's whole trajectory can be audited afterwards.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from . import ledger
from .errors import InvalidInput, LabError
from .home import Lab
from .registry import Progress, ToolSpec, all_tools, no_progress

MAX_ARGS_BYTES = 2_000_000
MAX_RESULT_CHARS = 80_000  # about 20k tokens
LEDGER_INT = range(-2**63, 2**63)  # what SQLite can store


def fits_ledger(value: Any) -> bool:
    """Whether every integer in ``value`` is one SQLite can store (ids, limits...)."""
    if isinstance(value, int):
        return value in LEDGER_INT
    if isinstance(value, dict):
        return all(fits_ledger(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(fits_ledger(v) for v in value)
    return True


def describe_validation_error(tool: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:8]:
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        problems.append(f"{where}: {item['msg']}")
    return f"invalid arguments for {tool}: " + "; ".join(problems)


def find_tool(name: str) -> ToolSpec:
    tools = all_tools()
    if name not in tools:
        raise LabError(f"unknown tool {name!r}", hint="list the tools with `sotalab tools`")
    return tools[name]


def encode_arguments(name: str, arguments: Any) -> str:
    """The arguments as canonical JSON (what the journal digests), refused when they are
    not an object or too large."""
    if not isinstance(arguments, dict):
        raise InvalidInput(f"arguments for {name} must be a JSON object, got {type(arguments).__name__}")
    encoded = json.dumps(arguments, sort_keys=True, default=str)
    if len(encoded) > MAX_ARGS_BYTES:
        raise InvalidInput(f"arguments for {name} are {len(encoded)} bytes; the limit is {MAX_ARGS_BYTES}",
                           hint="send large files in pieces or as a patch")
    return encoded


def parse_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> BaseModel:
    """The tool's input model from ``arguments``, or InvalidInput saying what to fix."""
    name = spec.name
    unknown = sorted(set(arguments) - set(spec.input_model.model_fields))
    if unknown:  # a misspelt argument must not be silently dropped
        raise InvalidInput(f"{name} has no argument {', '.join(map(repr, unknown))}",
                           hint=f"it takes: {', '.join(spec.input_model.model_fields) or 'no arguments'}")
    try:
        args = spec.input_model.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(name, exc),
                           hint="see the input schema with `sotalab tools --json`") from None
    if not fits_ledger(args.model_dump()):
        raise InvalidInput(f"a number in the arguments for {name} is too large (at most {LEDGER_INT.stop - 1})",
                           hint="ids and counts are 64-bit integers; pass one this server gave out")
    return args


def invoke(lab: Lab, name: str, arguments: dict[str, Any] | None,
           progress: Progress = no_progress) -> dict[str, Any]:
    """Run tool ``name`` and return its result as JSON-ready data.

    Raises LabError (with a message fit for the caller) for every expected failure.
    """
    spec = find_tool(name)
    arguments = arguments or {}
    encoded = encode_arguments(name, arguments)
    started = time.perf_counter()
    error: str | None = None
    try:
        args = parse_arguments(spec, arguments)
        result = spec.call(lab, args, progress).model_dump(mode="json")
        # Characters as sent (MCP JSON is UTF-8), not as \u escapes: CJK text is not 6x longer.
        size = len(json.dumps(result, default=str, ensure_ascii=False))
        if size > MAX_RESULT_CHARS:
            raise LabError(f"{name} produced a {size}-character result, over the {MAX_RESULT_CHARS} limit",
                           hint="ask for a smaller page (limit/cursor) or a narrower filter")
        return result
    except LabError as exc:
        error = str(exc)
        raise
    except Exception as exc:  # an unexpected bug: journal it, report it in one line
        error = f"{type(exc).__name__}: {exc}"
        raise LabError(f"{name} failed unexpectedly: {error}",
                       hint="this is a sotalab bug; the ledger is unchanged by the failed step") from exc
    finally:
        lab.db["journal"].insert({
            "ts": ledger.now(),
            "tool": name,
            "args_digest": hashlib.sha256(encoded.encode()).hexdigest()[:16],
            "campaign_id": campaign if isinstance(campaign := arguments.get("campaign"), int)
            and campaign in LEDGER_INT else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "ok": error is None,
            "error": error,
        })
