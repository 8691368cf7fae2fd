"""The `sotalab` command as a person uses it: real processes, real exit codes."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import SIMPLE_CAMPAIGN, sotalab_command
from sotalab.tools.registry import all_tools


def sotalab(*args: str, home=None):
    prefix = ["--home", str(home)] if home else []
    return subprocess.run([*sotalab_command(), *prefix, *args], capture_output=True, text=True, timeout=120)


def test_tools_json_lists_every_tool_with_schemas(tmp_path):
    result = sotalab("tools", "--json")
    assert result.returncode == 0
    listed = {t["name"]: t for t in json.loads(result.stdout)}
    assert set(listed) == set(all_tools())
    assert listed["campaign_create"]["inputSchema"]["required"]
    assert listed["lab_status"]["annotations"]["readOnlyHint"] is True


def test_call_goes_through_the_tool_path_and_persists(tmp_path):
    home = tmp_path / "lab"
    created = sotalab("call", "campaign_create", json.dumps(SIMPLE_CAMPAIGN), home=home)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "demo"
    got = sotalab("call", "campaign_get", '{"campaign": 1}', "--home", str(home))
    assert json.loads(got.stdout)["objective"]["metric"] == "accuracy"


def test_errors_are_one_line_and_non_zero(tmp_path):
    home = tmp_path / "lab"
    for args, code, words in ((("call", "campaign_get", "{oops"), 2, "not valid JSON"),
                              (("call", "no_such_tool", "{}"), 1, "unknown tool"),
                              (("call", "campaign_get", '{"campaign": 9}'), 1, "no campaign with id 9"),
                              (("call", "campaign_get", "[1]"), 1, "must be a JSON object"),
                              (("tools", "--bogus"), 2, "unrecognized arguments")):
        result = sotalab(*args, home=home)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr


def test_doctor_prints_each_check(tmp_path):
    result = sotalab("doctor", home=tmp_path / "lab")
    assert result.returncode == 0
    for name in ("docker", "bubblewrap", "nvml", "uv", "ray", "local sandbox", "schema version"):
        assert name in result.stdout


def test_readme_lists_every_tool_and_its_commands():
    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", readme, flags=re.M))
    assert listed == set(all_tools()), f"README tools table is stale: {sorted(listed ^ set(all_tools()))}"
    ci = (REPO / ".ci" / "run").read_text()
    assert "uv run pytest" in readme and ci.rstrip().endswith("uv run pytest"), \
        ".ci/run must end with the README's test command"


def test_output_piped_into_head_ends_quietly():
    """`sotalab tools --json | head -1`: a reader that stops early is no error."""
    process = subprocess.Popen([*sotalab_command(), "tools", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(100)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "BrokenPipe" not in stderr and "Traceback" not in stderr, stderr


def test_tools_shows_what_a_toolset_offers():
    from sotalab.server.toolsets import select

    result = sotalab("tools", "--toolset", "scheduler")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()}
    assert listed == select("scheduler", set(all_tools())) and "job_wait" in listed
    wrong = sotalab("tools", "--toolset", "everything")
    assert wrong.returncode == 1 and "unknown toolset 'everything'" in wrong.stderr
