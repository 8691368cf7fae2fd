"""sotalab as real hosts meet it: who the server says it is, what it writes to stderr,
what HTTP answers a notification, which tools each toolset offers, and the host programs
themselves (Claude Code, Gemini CLI), configured with `sotalab install`, reporting the
server connected by their own health checks. No model is involved in any of this."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import REPO, require, sotalab_command
from sotalab.server.app import build_server
from sotalab.server.toolsets import DEFAULT, select
from sotalab.tools.registry import all_tools

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}


def serve_once(tmp_path, *args: str, messages=(INIT,)) -> tuple[list[dict], str]:
    """`sotalab serve` over stdio: send ``messages``, read a reply per request; (replies, stderr)."""
    proc = subprocess.Popen([*sotalab_command(), "--home", str(tmp_path / "lab"), "serve", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replies = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                replies.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        stderr = proc.stderr.read()
        proc.wait(30)
    return replies, stderr


def test_the_server_says_it_is_sotalab_at_its_own_version_and_keeps_stderr_quiet(tmp_path):
    from importlib.metadata import version

    messages = (INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    (init, listed), stderr = serve_once(tmp_path, messages=messages)
    assert init["result"]["serverInfo"] == {"name": "sotalab", "version": version("sotalab")}
    assert len(listed["result"]["tools"]) == len(select("default", set(all_tools())))
    assert stderr == "", "hosts log a stdio server's stderr as errors"
    _, stderr = serve_once(tmp_path, "--log-level", "info")
    assert "Starting MCP server" in stderr, "logs are there when asked for"


def test_toolsets_select_what_a_host_sees(lab):
    available = set(all_tools())
    default = select("default", available)
    assert len(default) <= 30 and default == set(DEFAULT) & available and "job_wait" in default
    assert select("all", available) == available
    assert select("roles", available) >= select("init", available) | select("supervisor", available)
    scheduler = select("scheduler", available)
    assert {"trial_evaluate", "job_wait"} <= scheduler and "paper_search" not in scheduler
    assert select("papers,runs", available) >= {"paper_fetch", "run_logs", "job_wait"}
    for toolset in ("default", "init", "supervisor"):  # a job is useless without the tool that follows it
        assert "job_wait" in select(toolset, available), toolset

    async def listed(toolset):
        from fastmcp import Client

        async with Client(build_server(lab, toolset=toolset)) as client:
            return {t.name for t in await client.list_tools()}

    assert asyncio.run(listed("default")) == default


def test_an_unknown_toolset_is_one_line_naming_the_known_ones(tmp_path):
    result = subprocess.run([*sotalab_command(), "--home", str(tmp_path / "lab"), "serve", "--toolset", "nope"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown toolset 'nope'" in result.stderr and "default" in result.stderr and "scheduler" in result.stderr


def test_http_answers_a_notification_with_a_bare_202(tmp_path):
    from mcp_helpers import http_server

    with http_server(tmp_path / "lab") as (url, _):
        def post(message, session=None):
            headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                       "MCP-Protocol-Version": "2025-06-18"}
            if session:
                headers["Mcp-Session-Id"] = session
            request = urllib.request.Request(f"{url}/mcp", data=json.dumps(message).encode(), headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read()

        status, headers, _ = post(INIT)
        assert status == 200
        status, headers, body = post({"jsonrpc": "2.0", "method": "notifications/initialized"},
                                     headers.get("mcp-session-id"))
        assert status == 202 and body == b""
        assert headers.get("content-type") is None, "an empty body must not be labelled JSON"


# --------------------------------------------------------------- the host programs

def host_env(home: Path) -> dict:
    """A private HOME, no traffic the health checks do not need, and Claude Code's own
    setting for servers that start slowly (MCP_TIMEOUT, 30 s by default): on a 2-core
    machine running other tests, a cold start can take longer."""
    return {**os.environ, "HOME": str(home), "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
            "MCP_TIMEOUT": "120000",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "SOTALAB_HOME": str(home / "lab"),
            "GEMINI_CLI_NO_RELAUNCH": "true"}


def host(program: str, *args: str, cwd: Path, env: dict, timeout: int = 300) -> str:
    require(shutil.which(program) is not None, f"the {program} CLI (npm) is needed; .ci/run installs it")
    result = subprocess.run([program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def install_into(project: Path, host_name: str, env: dict) -> str:
    result = subprocess.run([*sotalab_command(), "install", host_name, "--project-dir", str(project)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def server_line(listing: str, name: str) -> str:
    return next((line for line in listing.splitlines() if line.lstrip("✓✗○ ").startswith(f"{name}:")), listing)


@pytest.mark.slow
def test_claude_code_reports_the_installed_server_connected_once_approved(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir(), project.mkdir()
    env = host_env(home)
    printed = install_into(project, "claude-code", env)
    assert "approve 'sotalab'" in printed
    assert "Pending approval" in server_line(host("claude", "mcp", "list", cwd=project, env=env), "sotalab")
    # The approval the user gives in `claude` (trust the folder, approve the server), as it records it.
    state = home / ".claude.json"
    config = json.loads(state.read_text()) if state.exists() else {}
    config.setdefault("projects", {})[str(project.resolve())] = {"hasTrustDialogAccepted": True,
                                                                 "enabledMcpjsonServers": ["sotalab"]}
    state.write_text(json.dumps(config))
    line = server_line(host("claude", "mcp", "list", cwd=project, env=env), "sotalab")
    assert "Connected" in line and "failed" not in line, line


@pytest.mark.slow
def test_gemini_cli_reports_the_installed_server_connected_in_a_trusted_folder(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir(), project.mkdir()
    env = host_env(home)
    printed = install_into(project, "gemini", env)
    assert "trust the folder" in printed
    assert "Disabled" in server_line(host("gemini", "mcp", "list", cwd=project, env=env), "sotalab")
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project.resolve()): "TRUST_FOLDER"}))
    line = server_line(host("gemini", "mcp", "list", cwd=project, env=env), "sotalab")
    assert "Connected" in line and "Disconnected" not in line, line


def fresh_checkout(into: Path) -> Path:
    """The repository's files as a clone has them: tracked and new files, nothing ignored
    (no virtual environment, no caches)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.mark.slow
def test_the_plugin_validates_and_installs_from_the_marketplace_on_its_own(tmp_path):
    """A marketplace install into an empty HOME, with no sotalab on PATH: Claude Code
    reports the plugin's own server connected."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir(), project.mkdir()
    env = host_env(home)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not (Path(p) / "sotalab").exists() or Path(p) == Path(shutil.which("uv")).parent)
    assert "Validation passed" in host("claude", "plugin", "validate", str(REPO), cwd=project, env=env)
    checkout = fresh_checkout(tmp_path / "checkout")
    # The plugin's first start builds its environment from the lock file (bytecode
    # compiled, as the plugin's command asks); on a cold cache that takes longer than a
    # host's start-up timeout, so it is built first here with the same options.
    subprocess.run(["uv", "sync", "--frozen", "--quiet", "--compile-bytecode", "--project", str(checkout)],
                   env=env, check=True, timeout=600)
    assert "Successfully added" in host("claude", "plugin", "marketplace", "add", str(checkout), cwd=project, env=env)
    assert "Successfully installed" in host("claude", "plugin", "install", "sotalab@sotalab", cwd=project, env=env)
    line = server_line(host("claude", "mcp", "list", cwd=project, env=env), "plugin:sotalab:sotalab")
    assert "Connected" in line and "failed" not in line, line


def test_a_second_start_answers_the_first_questions_at_once_and_exactly_as_the_server_would(tmp_path):
    """The stdio front (server/fast_start.py) answers initialize, tools/list and
    prompts/list from what the real server said last time; everything else reaches the
    real server, which must behave as after a normal start. A changed toolset or a broken
    cache file is a cold start, never a wrong answer."""
    home = tmp_path / "lab"

    async def session(toolset: str, **env: str) -> dict:
        params = StdioServerParameters(command=sotalab_command()[0],
                                       args=[*sotalab_command()[1:], "--home", str(home), "serve", "--toolset", toolset],
                                       env={**os.environ, **env})
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            init = await client.initialize()
            tools = (await client.list_tools()).tools
            prompts = (await client.list_prompts()).prompts
            status = await client.call_tool("lab_status", {})  # the real server, after the hand-over
            # A request far bigger than a pipe's buffer crosses the front whole.
            big = await client.call_tool("note_add", {"title": "big", "body": "x" * 300_000})
            assert big.is_error and "20000" in big.content[0].text  # parsed whole, then refused by size
            return {"server": (init.server_info.name, init.server_info.version), "instructions": init.instructions,
                    "tools": [t.model_dump(mode="json") for t in tools], "prompts": [p.name for p in prompts],
                    "home": status.structured_content["home"], "error": status.is_error}

    cold = asyncio.run(session("default"))
    assert (home / "server-start.json").is_file()
    warm = asyncio.run(session("default"))
    plain = asyncio.run(session("default", SOTALAB_NO_FAST_START="1"))
    assert warm == cold == plain
    assert not warm["error"] and warm["home"] == str(home.resolve())
    assert len(warm["tools"]) == len(DEFAULT)
    other = asyncio.run(session("all"))  # another toolset: its own answers, not the cached ones
    assert len(other["tools"]) == len(all_tools())
    (home / "server-start.json").write_text('{"key": 1, "answers": [')
    assert asyncio.run(session("default")) == plain
