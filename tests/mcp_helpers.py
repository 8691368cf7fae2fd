"""Real MCP clients for tests: the official SDK over stdio and over HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from conftest import sotalab_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def stdio_session(home: Path, env: dict | None = None):
    command = sotalab_command()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "serve", "--toolset", "all"],
                                   env={"SOTALAB_HOME": str(home), **(env or {})})
    with open(home.parent / "stdio-server.err", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@contextlib.asynccontextmanager
async def http_session(url: str, headers: dict | None = None):
    import httpx2

    async with httpx2.AsyncClient(headers=headers or {}, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@contextlib.contextmanager
def http_server(home: Path, *extra: str, env: dict | None = None):
    """`sotalab serve --http` as a real process; yields (base_url, process)."""
    port = free_port()
    log = open(home.parent / f"http-server-{port}.log", "w")
    proc = subprocess.Popen([*sotalab_command(), "serve", "--toolset", "all", "--http", "--port", str(port), *extra],
                            env={**os.environ, "SOTALAB_HOME": str(home), **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {Path(log.name).read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not start listening within 30 s")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


