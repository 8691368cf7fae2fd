"""A scripted sotalab client on the official MCP SDK.

``LabSession`` spawns ``sotalab serve`` over stdio, initializes an MCP session and calls
tools by name, printing each call, its progress notifications and its outcome as it
goes. Long tools answer over MCP with a job handle; ``call`` follows the job with
``job_wait`` (each wait at most 30 s, so no single call nears a host's timeout) and
returns the tool's own result. It is the engine of ``sotalab demo`` and a starting point
for any script that drives a campaign without a model::

    async with LabSession(home="/tmp/lab") as lab:
        campaign = await lab.call("campaign_create", name="x", objective={...}, evaluator={...})
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from sotalab.tools.home import resolve_home


class ToolCallError(Exception):
    """A tool answered with an error result; the message is the server's (what went wrong, what to do)."""

    def __init__(self, tool: str, message: str):
        super().__init__(f"{tool}: {message}")
        self.tool = tool
        self.message = message


# What the server needs from this process's environment beyond the SDK's safe default
# (HOME, PATH, USER...): the way out to package indexes (proxy, CA bundle, uv settings),
# Docker and GPUs, and sotalab's own settings. Nothing else: no tokens or keys.
FORWARDED_ENV = re.compile(r"^(HTTPS?_PROXY|ALL_PROXY|NO_PROXY|https?_proxy|all_proxy|no_proxy|SSL_CERT_FILE|"
                           r"SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|UV_[A-Z_]+|DOCKER_HOST|"
                           r"CUDA_VISIBLE_DEVICES|TMPDIR|LANG|LC_ALL|SOTALAB_(?!TOKEN)[A-Z_]+)$")


def server_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if FORWARDED_ENV.match(k)}
    env["SOTALAB_HOME"] = str(home)
    return env


JOB_WAIT_S = 20  # one job_wait call; the server allows at most 30


def server_command() -> list[str]:
    """How to start this installation's server with every tool (a script drives them all):
    the ``sotalab`` script beside this Python."""
    script = Path(sys.executable).parent / "sotalab"
    serve = ["serve", "--toolset", "all"]
    return [str(script), *serve] if script.exists() else [sys.executable, "-m", "sotalab.server.cli", *serve]


def is_job_handle(tool: str, result: dict) -> bool:
    """Whether ``tool`` answered with a job handle (tools/jobs.py) instead of its result."""
    return result.get("tool") == tool and isinstance(result.get("job"), int) and "next" in result


def _summary(value: Any, limit: int = 100) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class LabSession:
    """One MCP session with a ``sotalab serve`` child process."""

    def __init__(self, home: str | os.PathLike | None = None, command: list[str] | None = None,
                 out: TextIO | None = None, verbose: bool = True, server_log: Path | None = None):
        self.command = command or server_command()
        # Resolved here: the SDK passes the child only a few safe variables, so an
        # inherited $SOTALAB_HOME would otherwise be lost.
        self.home = resolve_home(home)
        self.out = out or sys.stdout
        self.verbose = verbose
        self.server_log = server_log  # the server's stderr (its logs) goes here; default: ours
        self.tools: set[str] = set()
        self.calls = 0
        self._stack = None
        self.session: ClientSession | None = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def __aenter__(self) -> "LabSession":
        from contextlib import AsyncExitStack

        params = StdioServerParameters(command=self.command[0], args=self.command[1:],
                                       env=server_environment(self.home))
        self._stack = AsyncExitStack()
        try:
            errlog = sys.stderr
            if self.server_log:
                self.server_log.parent.mkdir(parents=True, exist_ok=True)
                errlog = self._stack.enter_context(open(self.server_log, "a", encoding="utf-8"))
            read, write = await self._stack.enter_async_context(stdio_client(params, errlog=errlog))
            self.session = await self._stack.enter_async_context(ClientSession(read, write))
            await self.session.initialize()
            self.tools = {t.name for t in (await self.session.list_tools()).tools}
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.aclose()

    def _progress_printer(self, tool: str) -> Callable:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if self.verbose:
                share = f"{progress:g}/{total:g}" if total else f"{progress:g}"
                self.say(f"      · {tool} {share} {message or ''}".rstrip())
        return on_progress

    async def call(self, tool: str, quiet: bool = False, **arguments) -> dict:
        """Call ``tool`` and return its structured result, following a job to its end;
        raise ToolCallError on an error result or a failed job."""
        if self.tools and tool not in self.tools:
            raise ToolCallError(tool, f"the server has no tool {tool!r} (this sotalab build lacks it)")
        self.calls += 1
        started = time.perf_counter()
        if self.verbose and not quiet:
            self.say(f"    → {tool}({_summary(', '.join(f'{k}={v!r}' for k, v in arguments.items()), 90)})")
        result = await self._call_once(tool, arguments, started)
        while is_job_handle(tool, result) and result["status"] == "running":
            result = await self._call_once("job_wait", {"job": result["job"], "timeout_s": JOB_WAIT_S},
                                           started, progress_label=tool)
        if is_job_handle(tool, result):
            if result["status"] != "succeeded":
                message = result["error"] or f"job {result['job']} ended {result['status']}"
                if self.verbose:
                    self.say(f"      ✗ {tool} failed after {time.perf_counter() - started:.1f}s: {_summary(message, 200)}")
                raise ToolCallError(tool, message)
            result = result["result"] or {}
        elapsed = time.perf_counter() - started
        if self.verbose and not quiet and elapsed >= 1.0:
            self.say(f"      ✓ {tool} {elapsed:.1f}s")
        return result

    async def _call_once(self, tool: str, arguments: dict, started: float, progress_label: str | None = None) -> dict:
        result = await self.session.call_tool(tool, arguments,
                                              progress_callback=self._progress_printer(progress_label or tool))
        if result.is_error:
            message = " ".join(c.text for c in result.content if getattr(c, "text", None))
            if self.verbose:
                self.say(f"      ✗ {progress_label or tool} failed after {time.perf_counter() - started:.1f}s: "
                         f"{_summary(message, 200)}")
            raise ToolCallError(progress_label or tool, message)
        return result.structured_content or {}

    async def prompt(self, name: str, **arguments: str) -> str:
        result = await self.session.get_prompt(name, {k: str(v) for k, v in arguments.items()})
        return "\n".join(m.content.text for m in result.messages if getattr(m.content, "text", None))

    async def resource(self, uri: str) -> str:
        result = await self.session.read_resource(uri)
        return "\n".join(c.text for c in result.contents if getattr(c, "text", None))
