"""Host configs in clients/: each parses, names only tools the server has, and starts the
server exactly as that host would (command, args, the host's own env expansion) so that
it answers tools/list over the official MCP client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tomllib
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client

from conftest import REPO, sotalab_command
from sotalab.server.install import HOSTS, shipped_entry
from sotalab.server.roles import PLUGIN_TOOL_PREFIX, ROLES, TOOL_PREFIX, load_skill
from sotalab.server.toolsets import select
from sotalab.tools.registry import all_tools

CLIENTS = REPO / "clients"
CLAUDE_CODE = CLIENTS / "claude-code"


def load(path: Path):
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())


def frontmatter(path: Path) -> dict[str, str]:
    head = path.read_text().split("---")[1]
    return dict(line.split(": ", 1) for line in head.strip().splitlines())


# Each host's own variable expansion, as its documentation describes it.
def expand_claude_code(value: str, environ: dict) -> str:
    """${VAR} and ${VAR:-default}; a variable that is unset with no default is an error."""
    def one(match):
        name, default = match.group(1), match.group(3)
        if name in environ:
            return environ[name]
        if default is None:
            raise AssertionError(f"Claude Code refuses to start a server with unset ${{{name}}}")
        return default
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", one, value)


def expand_vscode_style(value: str, environ: dict) -> str:
    """Cursor and VS Code: ${env:VAR}, empty when unset."""
    return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: environ.get(m.group(1), ""), value)


def expand_gemini(value: str, environ: dict) -> str:
    """$VAR or ${VAR}; unset ones stay as written."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: environ.get(m.group(1), m.group(0)), value)


def launch_spec(host: str, entry: dict, environ: dict) -> tuple[str, list[str], dict]:
    """(command, args, child environment) the way ``host`` builds them from ``entry``."""
    base = get_default_environment()
    expand = {"claude-code": expand_claude_code, "cursor": expand_vscode_style, "vscode": expand_vscode_style,
              "gemini": expand_gemini}.get(host, lambda v, e: v)
    command = expand(entry["command"], environ)
    args = [expand(a, environ) for a in entry.get("args", [])]
    env = {k: expand(v, environ) for k, v in entry.get("env", {}).items()}
    if host == "gemini":  # Gemini CLI passes its own environment on to MCP servers
        child = dict(environ) | env
    elif host == "codex":  # Codex clears the environment, then adds env_vars from its own
        child = base | {k: environ[k] for k in entry.get("env_vars", []) if k in environ} | env
    else:
        child = base | env
    return command, args, child


def resolve_sotalab(command: str) -> str:
    """The configs say `sotalab`: on a user's PATH that is the installed console script."""
    return sotalab_command()[0] if command == "sotalab" else command


CONFIGS = {
    "claude-code": CLAUDE_CODE / ".mcp.json",
    "claude-desktop": CLIENTS / "claude-desktop" / "claude_desktop_config.json",
    "cursor": CLIENTS / "cursor" / "mcp.json",
    "vscode": CLIENTS / "vscode" / "mcp.json",
    "codex": CLIENTS / "codex" / "config.toml",
    "gemini": CLIENTS / "gemini" / "settings.json",
}


def test_every_host_has_a_shipped_config_that_install_uses():
    assert set(CONFIGS) == set(HOSTS)
    for host, path in CONFIGS.items():
        assert CLIENTS / HOSTS[host].template == path
        entry = shipped_entry(host)
        assert entry == load(path)[HOSTS[host].key]["sotalab"]
        assert entry["command"] == "sotalab" and entry["args"] == ["serve", "--toolset", "default"], f"{host} must launch `sotalab serve`"


def test_vscode_uses_its_own_servers_shape_and_codex_its_table():
    assert set(load(CONFIGS["vscode"])) == {"servers"}
    assert load(CONFIGS["vscode"])["servers"]["sotalab"]["type"] == "stdio"
    assert "sotalab" in load(CONFIGS["codex"])["mcp_servers"]


@pytest.mark.parametrize("host", sorted(CONFIGS))
def test_server_starts_as_the_config_says_and_answers_tools_list(host, tmp_path):
    entry = shipped_entry(host)
    lab_home = tmp_path / "lab"
    # The host's own environment: a user who set SOTALAB_HOME, and a private HOME so that
    # a host that passes no SOTALAB_HOME lands in a default home inside the test folder.
    environ = {"SOTALAB_HOME": str(lab_home), "HOME": str(tmp_path / "user"), "PATH": os.environ["PATH"]}
    command, args, env = launch_spec(host, entry, environ)
    assert "${" not in json.dumps([command, args, env]), "every variable must be expanded"
    env["HOME"] = environ["HOME"]

    async def scenario():
        params = StdioServerParameters(command=resolve_sotalab(command), args=args, env=env, cwd=str(tmp_path))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            status = (await session.call_tool("lab_status", {})).structured_content
            return tools, status

    tools, status = asyncio.run(scenario())
    assert tools == select("default", set(all_tools())) and len(tools) <= 30
    if host == "claude-desktop":  # no expansion there: `sotalab install` writes the home in
        assert status["home"] == str((tmp_path / "user" / ".local" / "share" / "sotalab").resolve())
    else:
        assert status["home"] == str(lab_home.resolve()), f"{host} must hand the server SOTALAB_HOME"


def test_claude_code_leaves_the_home_to_the_default_when_unset():
    entry = shipped_entry("claude-code")
    _, _, env = launch_spec("claude-code", entry, {"PATH": "/usr/bin"})
    assert env["SOTALAB_HOME"] == "", "empty means the server's default home (no startup error)"


# ------------------------------------------------------------------- Claude Code plugin

def test_plugin_and_marketplace_manifests_at_the_repository_root():
    """`/plugin marketplace add <repo>` reads .claude-plugin/marketplace.json at the root;
    the plugin is the repository itself, so its server command has the project to run."""
    plugin = load(REPO / ".claude-plugin" / "plugin.json")
    marketplace = load(REPO / ".claude-plugin" / "marketplace.json")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", plugin["name"]) and plugin["version"]
    assert marketplace["name"] and marketplace["owner"]["name"]
    [listed] = marketplace["plugins"]
    assert listed["name"] == plugin["name"] and (REPO / listed["source"]).resolve() == REPO
    assert sorted(p.name for p in (REPO / plugin["skills"]).iterdir() if p.is_dir()) == sorted(ROLES)
    assert sorted(Path(a).stem for a in plugin["agents"]) == sorted(ROLES)
    assert all((REPO / a).is_file() for a in plugin["agents"])
    assert not (CLAUDE_CODE / ".claude-plugin").exists(), "one plugin, one server"
    [server] = plugin["mcpServers"].values()
    assert server["command"] == "uv" and "${CLAUDE_PLUGIN_ROOT}" in server["args"]
    assert "sotalab" in server["args"], "the plugin runs its own checkout, not a `sotalab` on PATH"


def test_plugin_server_starts_without_sotalab_on_path(tmp_path):
    """The plugin's own command, expanded as Claude Code does, with a PATH that has uv and
    the system but no sotalab: it serves every tool its agents name."""
    import shutil

    [entry] = load(REPO / ".claude-plugin" / "plugin.json")["mcpServers"].values()
    uv = shutil.which("uv")
    assert uv, "uv is needed to run the plugin's server"
    path = os.pathsep.join([str(Path(uv).parent), "/usr/bin", "/bin"])
    assert shutil.which("sotalab", path=path) is None or Path(shutil.which("sotalab", path=path)).parent == Path(uv).parent
    environ = {"CLAUDE_PLUGIN_ROOT": str(REPO), "SOTALAB_HOME": str(tmp_path / "lab"), "PATH": path,
               "HOME": os.environ.get("HOME", str(tmp_path))}
    command, args, env = launch_spec("claude-code", entry, environ)
    env |= {"PATH": path, "HOME": environ["HOME"]}

    async def scenario():
        params = StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp_path))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return {t.name for t in (await session.list_tools()).tools}

    tools = asyncio.run(scenario())
    for role in ROLES:
        assert set(load_skill(role).tools) <= tools, role


@pytest.mark.parametrize("role", ROLES)
def test_one_subagent_per_role_with_only_that_roles_tools_under_the_plugins_names(role):
    agent = frontmatter(CLAUDE_CODE / "agents" / f"{role}.md")
    assert agent["name"] == f"sotalab-{role}"
    assert agent["description"] == load_skill(role).description
    tools = [t.strip() for t in agent["tools"].split(",")]
    assert all(t.startswith(PLUGIN_TOOL_PREFIX) for t in tools), "plugin tools are mcp__plugin_<plugin>_<server>__*"
    assert [t.removeprefix(PLUGIN_TOOL_PREFIX) for t in tools] == list(load_skill(role).tools), \
        "the agent's tools are its skill's allowed-tools"
    missing = sorted({t.removeprefix(PLUGIN_TOOL_PREFIX) for t in tools} - set(all_tools()))
    assert not missing, f"{role} agent lists tools the server lacks: {missing}"


def test_every_tool_name_in_any_client_file_exists():
    names = set()
    for path in CLIENTS.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json", ".toml") and "python" not in path.parts:
            text = path.read_text()
            names |= set(re.findall(rf"(?:{TOOL_PREFIX}|{PLUGIN_TOOL_PREFIX})([a-z_]+)", text))
    assert names and not sorted(names - set(all_tools()))
