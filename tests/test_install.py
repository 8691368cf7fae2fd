"""`sotalab install <host>`: merges the sotalab entry into a host's config without
touching other servers or settings; --dry-run writes nothing; scopes pick the file."""

from __future__ import annotations

import io
import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from sotalab.server import install, jsonc
from sotalab.server.install import HOSTS, install_main

OTHER_SERVER = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "env": {"KEEP": "me"}}


@pytest.fixture
def user_home(tmp_path, monkeypatch):
    """A private HOME (and config dirs) so user-scope installs land in the test's folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.setenv("SOTALAB_HOME", str(tmp_path / "lab"))
    return home


@pytest.fixture
def project(tmp_path, user_home, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def run(*argv) -> tuple[int, str]:
    out = io.StringIO()
    return install_main(list(argv), out=out), out.getvalue()


@pytest.mark.parametrize("host", sorted(h for h in HOSTS if HOSTS[h].project and h != "codex"))
def test_project_install_merges_without_clobbering_other_servers(project, host):
    target = project / HOSTS[host].project
    target.parent.mkdir(parents=True, exist_ok=True)
    key = HOSTS[host].key
    target.write_text(json.dumps({key: {"memory": OTHER_SERVER}, "otherSetting": [1, 2, 3]}, indent=4))

    code, out = run(host)
    assert code == 0 and "added the sotalab server" in out
    data = json.loads(target.read_text())
    assert data["otherSetting"] == [1, 2, 3]
    assert data[key]["memory"] == OTHER_SERVER
    entry = data[key]["sotalab"]
    assert entry["args"] == ["serve", "--toolset", "default"]
    assert Path(entry["command"]).name == "sotalab"
    assert entry == install.entry_for(host)

    code, out = run(host)
    assert code == 0 and "nothing to change" in out


def test_dry_run_shows_the_change_and_writes_nothing(project):
    target = project / ".mcp.json"
    original = json.dumps({"mcpServers": {"memory": OTHER_SERVER}})
    target.write_text(original)
    before = target.stat().st_mtime_ns

    code, out = run("claude-code", "--dry-run")
    assert code == 0
    assert out.count('"sotalab": {') == 1 and "dry run: nothing written" in out
    assert target.read_text() == original and target.stat().st_mtime_ns == before
    assert not (project / ".cursor").exists()

    code, out = run("cursor", "--dry-run")
    assert code == 0 and not (project / ".cursor").exists(), "a dry run creates no file or folder"


def test_an_existing_sotalab_entry_is_updated_in_place(project):
    target = project / ".vscode" / "mcp.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"servers": {"sotalab": {"type": "stdio", "command": "/old/sotalab", "args": []},
                                              "memory": OTHER_SERVER}, "inputs": []}))
    code, out = run("vscode")
    assert code == 0 and "updated the sotalab server" in out
    data = json.loads(target.read_text())
    assert data["servers"]["sotalab"]["args"] == ["serve", "--toolset", "default"] and data["servers"]["memory"] == OTHER_SERVER
    assert data["inputs"] == []


def test_codex_toml_keeps_other_servers_and_comments_byte_for_byte(project):
    target = project / ".codex" / "config.toml"
    target.parent.mkdir()
    head = ('# my codex settings\nmodel = "o4"\n\n[mcp_servers.memory]\ncommand = "npx"  # keep this comment\n'
            'args = ["-y", "@modelcontextprotocol/server-memory"]\n\n')
    old_sotalab = '[mcp_servers.sotalab]\ncommand = "/old/sotalab"\n\n[mcp_servers.sotalab.env]\nX = "1"\n\n'
    tail = '[profiles.fast]\nmodel = "o4-mini"\n'
    target.write_text(head + old_sotalab + tail)

    code, out = run("codex")
    assert code == 0 and "updated" in out
    text = target.read_text()
    assert text.startswith(head + tail), "everything but the sotalab tables stays as written"
    data = tomllib.loads(text)
    assert data["mcp_servers"]["sotalab"] == install.entry_for("codex")
    assert data["mcp_servers"]["sotalab"]["env_vars"] == ["SOTALAB_HOME"]
    assert data["profiles"]["fast"]["model"] == "o4-mini" and data["model"] == "o4"

    code, out = run("codex")
    assert "nothing to change" in out


def test_codex_refuses_a_form_it_cannot_edit_safely(project):
    target = project / ".codex" / "config.toml"
    target.parent.mkdir()
    original = 'mcp_servers = { sotalab = { command = "x" } }\n'
    target.write_text(original)
    code = install_main(["codex"])
    assert code == 1 and target.read_text() == original


def test_scopes_pick_the_hosts_documented_files(project, user_home, monkeypatch):
    assert run("claude-code", "--scope", "user")[0] == 0
    assert json.loads((user_home / ".claude.json").read_text())["mcpServers"]["sotalab"]["args"] == ["serve", "--toolset", "default"]
    assert not (project / ".mcp.json").exists()
    assert run("gemini", "--scope", "user")[0] == 0
    assert (user_home / ".gemini" / "settings.json").exists()
    assert run("cursor", "--scope", "user")[0] == 0
    assert (user_home / ".cursor" / "mcp.json").exists()

    monkeypatch.setenv("CODEX_HOME", str(user_home / "codex-home"))
    assert run("codex", "--scope", "user")[0] == 0
    assert (user_home / "codex-home" / "config.toml").exists()

    assert run("gemini")[0] == 0
    assert (project / ".gemini" / "settings.json").exists()


def test_user_config_keeps_its_other_keys_and_private_mode(project, user_home):
    config = user_home / ".claude.json"
    config.write_text(json.dumps({"numStartups": 42, "projects": {"/x": {"allowedTools": []}},
                                  "mcpServers": {"memory": OTHER_SERVER}}))
    os.chmod(config, 0o600)
    assert install_main(["claude-code", "--scope", "user"]) == 0
    data = json.loads(config.read_text())
    assert data["numStartups"] == 42 and data["projects"] == {"/x": {"allowedTools": []}}
    assert data["mcpServers"]["memory"] == OTHER_SERVER and "sotalab" in data["mcpServers"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_claude_desktop_gets_absolute_command_and_the_lab_home(project, user_home, tmp_path):
    assert install_main(["claude-desktop", "--scope", "project"]) == 1, "Claude Desktop has no project config"
    assert install_main(["claude-desktop"]) == 0
    config = user_home / ".config" / "Claude" / "claude_desktop_config.json"
    entry = json.loads(config.read_text())["mcpServers"]["sotalab"]
    assert Path(entry["command"]).is_absolute() and os.access(entry["command"], os.X_OK)
    assert entry["env"] == {"SOTALAB_HOME": str((tmp_path / "lab").resolve())}


VSCODE_WITH_COMMENTS = """\
// my VS Code MCP servers
{
    /* the memory server: keep */
    "servers": {
        "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}, // trailing
    },
    "inputs": [{"id": "url//not-a-comment", "type": "promptString", "description": "/* not one either */"},],
}
"""


def test_json_with_comments_is_edited_in_place_keeping_every_comment(project):
    target = project / ".vscode" / "mcp.json"
    target.parent.mkdir()
    target.write_text(VSCODE_WITH_COMMENTS)
    code, out = run("vscode")
    assert code == 0 and "added the sotalab server" in out
    text = target.read_text()
    for line in VSCODE_WITH_COMMENTS.splitlines():
        assert line in text, f"lost: {line!r}"
    data = jsonc.loads(text)
    assert data["servers"]["sotalab"] == install.entry_for("vscode")
    assert data["servers"]["memory"]["command"] == "npx"
    assert data["inputs"][0]["id"] == "url//not-a-comment"
    assert run("vscode")[1].count("nothing to change") == 1

    assert text.count('"default"') == 1
    target.write_text(text.replace('"default"', '"all"'))  # an old entry: replaced in place
    code, out = run("vscode")
    assert code == 0 and "updated the sotalab server" in out
    assert jsonc.loads(target.read_text())["servers"]["sotalab"] == install.entry_for("vscode")
    assert "/* the memory server: keep */" in target.read_text()


@pytest.mark.parametrize("text", ['{"mcpServers": {"memory": {}}', '{"mcpServers": [1]}', '[]', '{"a": 1} /* open'])
def test_broken_config_is_left_alone_with_what_to_add_by_hand(project, capsys, text):
    target = project / ".cursor" / "mcp.json"
    target.parent.mkdir()
    target.write_text(text)
    assert install_main(["cursor"]) == 1
    err = capsys.readouterr().err
    assert "not touching it" in err and '"sotalab":' in err and "Traceback" not in err
    assert target.read_text() == text


def test_each_host_names_its_approval_step(project):
    assert "approve 'sotalab'" in run("claude-code")[1] and str(project) in run("claude-code")[1]
    assert "trust the folder" in run("gemini")[1]
    assert "trust it" in run("codex")[1]
    assert "without asking" in run("claude-code", "--scope", "user")[1]


def test_under_uv_run_directory_it_writes_into_the_callers_project_not_the_checkout(project, user_home):
    """`uv run --directory <checkout> sotalab install ...` run from the user's project."""
    import shutil
    import subprocess

    from conftest import REPO

    uv = shutil.which("uv")
    assert uv, "uv is part of the documented set-up"
    result = subprocess.run([uv, "run", "--frozen", "--directory", str(REPO), "sotalab", "install", "gemini"],
                            cwd=project, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PWD": str(project)})
    assert result.returncode == 0, result.stderr
    assert (project / ".gemini" / "settings.json").is_file()
    assert not (REPO / ".gemini").exists()
    assert str(project) in result.stdout


def test_command_is_absolute_unless_a_lasting_shim_puts_it_on_path(tmp_path, monkeypatch):
    import sys

    own = Path(sys.executable).parent / "sotalab"
    monkeypatch.setenv("PATH", f"{own.parent}{os.pathsep}/usr/bin")  # as under `uv run`
    assert install.sotalab_command() == str(own)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "sotalab").symlink_to(own)  # as `uv tool install` / pipx link it
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}/usr/bin")
    assert install.sotalab_command() == "sotalab"
