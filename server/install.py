"""`sotalab install <host>`: add the sotalab server to an MCP host's configuration.

The entry written is the one shipped in ``clients/<host>/`` (the single source of every
host config), with the command resolved for this machine. Other servers, settings and
comments in the target file are kept as they are; the change is shown as a diff, and
``--dry-run`` shows it without writing. Every host then wants the user to approve or
trust the server before it starts it; the installer prints that step.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .jsonc import JsoncError, loads as jsonc_loads, set_entry

SERVER_NAME = "sotalab"
INSTALL_HINT = ("put `sotalab` on PATH: `uv tool install --editable <your sotalab checkout>` or "
                "`uv tool install git+https://github.com/sotalab/sotalab`")


def clients_root() -> Path:
    from sotalab.tools import data_path

    return data_path("clients")


def _appdata() -> Path:
    return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")


def _claude_desktop_config() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library/Application Support/Claude/claude_desktop_config.json"
    if sys.platform == "win32":
        return _appdata() / "Claude/claude_desktop_config.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "Claude/claude_desktop_config.json"


def _vscode_user_config() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library/Application Support/Code/User/mcp.json"
    if sys.platform == "win32":
        return _appdata() / "Code/User/mcp.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "Code/User/mcp.json"


def _codex_home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


@dataclass(frozen=True)
class Host:
    template: str  # the shipped config, relative to clients/
    key: str  # the table holding the servers
    project: str | None  # relative to the project directory; None: no project scope
    user: Callable[[], Path]
    expands_env: bool  # whether the host expands ${...} in env values itself
    approval: str  # what the user must do before the host starts the server ({dir}: the project)


HOSTS: dict[str, Host] = {
    "claude-code": Host("claude-code/.mcp.json", "mcpServers", ".mcp.json",
                        lambda: Path.home() / ".claude.json", True,
                        "Claude Code starts a project's .mcp.json servers only once approved: run `claude` in "
                        "{dir} and approve 'sotalab' (until then `claude mcp list` shows it as Pending approval)."),
    "claude-desktop": Host("claude-desktop/claude_desktop_config.json", "mcpServers", None,
                           _claude_desktop_config, False, "Restart Claude Desktop to start the server."),
    "cursor": Host("cursor/mcp.json", "mcpServers", ".cursor/mcp.json",
                   lambda: Path.home() / ".cursor/mcp.json", True,
                   "Cursor asks before it starts a new MCP server: enable 'sotalab' in Settings > MCP."),
    "vscode": Host("vscode/mcp.json", "servers", ".vscode/mcp.json", _vscode_user_config, True,
                   "VS Code asks you to trust a new MCP server the first time it starts: run "
                   "'MCP: List Servers', start 'sotalab' and trust it."),
    "codex": Host("codex/config.toml", "mcp_servers", ".codex/config.toml",
                  lambda: _codex_home() / "config.toml", True,
                  "Codex reads a project's .codex/config.toml only in a trusted project: run `codex` in {dir} "
                  "and trust it (until then the server is ignored without a word)."),
    "gemini": Host("gemini/settings.json", "mcpServers", ".gemini/settings.json",
                   lambda: Path.home() / ".gemini/settings.json", True,
                   "Gemini CLI starts MCP servers only in a trusted folder: run `gemini` in {dir} and trust "
                   "the folder (until then `gemini mcp list` shows the server as Disabled)."),
}


class InstallError(Exception):
    """Something the user must fix by hand; the message says what."""


def shipped_entry(host: str) -> dict:
    """The sotalab server entry as shipped in clients/ for ``host``."""
    spec = HOSTS[host]
    path = clients_root() / spec.template
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return data[spec.key][SERVER_NAME]


def sotalab_command() -> str:
    """The bare name ``sotalab`` only when a shim outside this environment (``uv tool``,
    pipx) puts this installation on PATH for good; otherwise the script's absolute path,
    since a PATH entry seen under ``uv run`` or an activated venv is gone when the host
    launches the server."""
    own = Path(sys.executable).parent / "sotalab"
    found = shutil.which("sotalab")
    if own.exists():
        shim = found and Path(found).parent != own.parent and Path(found).resolve() == own.resolve()
        return "sotalab" if shim else str(own)
    if found:
        return "sotalab"
    raise InstallError(f"cannot find the `sotalab` command; {INSTALL_HINT}, and retry")


def entry_for(host: str) -> dict:
    """The entry to write on this machine."""
    entry = copy.deepcopy(shipped_entry(host))
    command = sotalab_command()
    if not HOSTS[host].expands_env:
        # No variable expansion and a bare GUI environment (Claude Desktop): absolute
        # command, and the lab home fixed to the one this shell would use.
        from sotalab.tools.home import resolve_home

        command = str(Path(shutil.which(command) or command).resolve())
        entry["env"] = {"SOTALAB_HOME": str(resolve_home())}
    entry["command"] = command
    return entry


def target_path(host: str, scope: str, project_dir: Path) -> Path:
    spec = HOSTS[host]
    if scope == "project":
        if spec.project is None:
            raise InstallError(f"{host} has no project-level configuration; use --scope user")
        return project_dir / spec.project
    return spec.user()


# --- merging -------------------------------------------------------------------------

def merge_json(text: str, key: str, entry: dict, where: Path) -> str:
    """Set the sotalab entry in JSON or JSON with comments (VS Code), keeping the rest of
    the text, comments and formatting included, as it was."""
    try:
        return set_entry(text, key, SERVER_NAME, entry)
    except JsoncError as exc:
        raise InstallError(f"{where} is not JSON this installer can edit ({exc}); not touching it; "
                           f"add this under {key!r} by hand: \"{SERVER_NAME}\": {json.dumps(entry)}") from None


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_table(key: str, entry: dict) -> str:
    lines = [f"[{key}.{SERVER_NAME}]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def merge_toml(text: str, key: str, entry: dict, where: Path) -> str:
    """Replace (or append) the ``[key.sotalab]`` table as text, so everything else in the
    file — other servers, comments, formatting — stays byte for byte."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"{where} is not valid TOML ({exc}); not touching it") from None
    header = re.compile(rf"^\s*\[\s*{re.escape(key)}\s*\.\s*{SERVER_NAME}\s*(\.[^\]]*)?\]\s*(#.*)?$")
    any_header = re.compile(r"^\s*\[")
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if any_header.match(line):
            skipping = bool(header.match(line))
        if not skipping:
            kept.append(line)
    body = "".join(kept).rstrip("\n")
    merged = (body + "\n\n" if body.strip() else "") + toml_table(key, entry)
    try:
        after = tomllib.loads(merged)
    except tomllib.TOMLDecodeError:
        after = {}
    others_before = {k: v for k, v in before.get(key, {}).items() if k != SERVER_NAME}
    others_after = {k: v for k, v in after.get(key, {}).items() if k != SERVER_NAME}
    rest_before = {k: v for k, v in before.items() if k != key}
    rest_after = {k: v for k, v in after.items() if k != key}
    if after.get(key, {}).get(SERVER_NAME) != entry or others_after != others_before or rest_after != rest_before:
        raise InstallError(f"{where} defines {key}.{SERVER_NAME} in a form this installer does not edit "
                           f"(inline or dotted keys); add the [{key}.{SERVER_NAME}] table by hand")
    return merged


def planned_change(host: str, scope: str, project_dir: Path) -> tuple[Path, str, str]:
    """(path, current text, new text) for installing sotalab into ``host``."""
    spec = HOSTS[host]
    path = target_path(host, scope, project_dir)
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    merge = merge_toml if path.suffix == ".toml" else merge_json
    return path, current, merge(current, spec.key, entry_for(host), path)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.sotalab-tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o777)  # ~/.claude.json is private; keep it so
    os.replace(tmp, path)


def install(host: str, scope: str, dry_run: bool, project_dir: Path, out=sys.stdout) -> int:
    path, current, new = planned_change(host, scope, project_dir)
    where = f"{host} ({scope}): {path}"
    if new == current:
        print(f"{where}: sotalab is already configured; nothing to change", file=out)
        print(f"Next: {approval_step(host, scope, project_dir)}", file=out)
        return 0
    was = "updated" if current and SERVER_NAME in _servers(path, current, HOSTS[host].key) else "added"
    diff = difflib.unified_diff(current.splitlines(keepends=True), new.splitlines(keepends=True),
                                fromfile=f"{path} (before)", tofile=f"{path} (after)")
    out.write("".join(diff))
    if dry_run:
        print(f"{where}: would have {was} the sotalab server (dry run: nothing written)", file=out)
        return 0
    write_atomically(path, new)
    print(f"{where}: {was} the sotalab server; other servers left as they were", file=out)
    print(f"Next: {approval_step(host, scope, project_dir)}", file=out)
    return 0


def approval_step(host: str, scope: str, project_dir: Path) -> str:
    step = HOSTS[host].approval.format(dir=project_dir)
    if scope == "user" and host in ("claude-code", "codex"):
        return "start a new session of the host; it loads servers from its user config without asking."
    return step


def _servers(path: Path, text: str, key: str) -> dict:
    data = tomllib.loads(text) if path.suffix == ".toml" else jsonc_loads(text)
    return data.get(key, {})


def callers_directory() -> Path:
    """Where the user ran the command. `uv run --directory <checkout> sotalab install`
    changes into the sotalab checkout before sotalab starts, but leaves the shell's $PWD
    as it was: when the working directory is the checkout itself, $PWD is the user's."""
    from sotalab.tools import PACKAGE_ROOT

    cwd = Path.cwd()
    shell = os.environ.get("PWD")
    if shell and cwd.resolve() == PACKAGE_ROOT.resolve() and Path(shell).is_dir():
        return Path(shell)
    return cwd


def install_main(argv: list[str], out=None) -> int:
    parser = argparse.ArgumentParser(prog="sotalab install",
                                     description="Add the sotalab MCP server to a host's configuration, "
                                                 "keeping every other server already there.")
    parser.add_argument("host", choices=sorted(HOSTS))
    parser.add_argument("--scope", choices=["project", "user"], default=None,
                        help="project: a config file in --project-dir (default where the host has one); "
                             "user: the host's per-user config")
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="the project whose config to edit (default: the directory you ran the command in, "
                             "also under `uv run --directory <sotalab checkout>`)")
    parser.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    args = parser.parse_args(argv)
    scope = args.scope or ("project" if HOSTS[args.host].project else "user")
    project_dir = (args.project_dir or callers_directory()).resolve()
    try:
        return install(args.host, scope, args.dry_run, project_dir, out=out or sys.stdout)
    except InstallError as exc:
        print(f"sotalab install: {exc}", file=sys.stderr)
        return 1
