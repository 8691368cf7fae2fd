"""The MCP face, through real clients: fastmcp in-memory, the official SDK over stdio
and HTTP, and the MCP Inspector CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from fastmcp import Client

from conftest import SIMPLE_CAMPAIGN, require, sotalab_command
from mcp_helpers import free_port, http_server, http_session, stdio_session
from sotalab.server.app import build_server
from sotalab.tools.home import Lab
from sotalab.server.toolsets import select, toolset_names
from sotalab.tools.registry import SHAPE_IN, all_tools

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
MODEL_SEES_AT_MOST = 20_000  # characters of name, description and input schema for every tool: ~5k tokens


def test_in_memory_client_sees_typed_tools_and_resources(lab):
    async def scenario():
        async with Client(build_server(lab)) as client:
            tools = {t.name: t for t in await client.list_tools()}
            assert set(tools) == set(all_tools())
            status = tools["lab_status"]
            assert status.annotations.read_only_hint is True
            assert tools["campaign_create"].annotations.read_only_hint is False
            created = await client.call_tool("campaign_create", SIMPLE_CAMPAIGN)
            assert created.structured_content["name"] == "demo"
            trial = await client.call_tool("trial_create", {"campaign": 1, "kind": "baseline"})
            resource = await client.read_resource("sotalab://trials/1")
            assert json.loads(resource[0].text)["id"] == trial.structured_content["id"]
            campaign = await client.read_resource("sotalab://campaigns/1")
            assert json.loads(campaign[0].text)["baseline_trial_id"] == 1

    asyncio.run(scenario())


def test_in_memory_errors_are_results_the_model_can_act_on(lab):
    async def scenario():
        async with Client(build_server(lab)) as client:
            missing = await client.call_tool("trial_get", {"trial": 7}, raise_on_error=False)
            assert missing.is_error and "no trial with id 7" in missing.content[0].text
            assert "list trials with trial_get" in missing.content[0].text
            wrong = await client.call_tool("campaign_create", {"name": 5}, raise_on_error=False)
            assert wrong.is_error and "objective" in wrong.content[0].text
            # the server is still healthy after bad input
            assert (await client.call_tool("campaign_get", {})).structured_content["total"] == 0

    asyncio.run(scenario())


def test_stdio_with_the_official_sdk(tmp_path):
    home = tmp_path / "lab"

    async def scenario():
        async with stdio_session(home) as session:
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == set(all_tools())
            created = await session.call_tool("campaign_create", SIMPLE_CAMPAIGN)
            assert not created.is_error and created.structured_content["id"] == 1
            bad = await session.call_tool("campaign_get", {"campaign": "one"})
            assert bad.is_error and "valid integer" in bad.content[0].text
            unknown = await session.call_tool("no_such_tool", {})
            assert unknown.is_error
            # a recursive result (the lineage tree) validates against its output schema
            await session.call_tool("trial_create", {"campaign": 1, "kind": "baseline"})
            await session.call_tool("trial_create", {"campaign": 1, "kind": "param"})
            lineage = await session.call_tool("trial_get", {"trial": 1, "lineage": True})
            assert not lineage.is_error and lineage.structured_content["tree"]["children"][0]["id"] == 2

    asyncio.run(scenario())
    assert Lab.open(home).db.execute("SELECT name FROM campaigns").fetchone()[0] == "demo"
    stderr = (tmp_path / "stdio-server.err").read_text()
    assert "Traceback" not in stderr


def test_http_with_the_official_sdk(tmp_path):
    with http_server(tmp_path / "lab") as (url, _):
        async def scenario():
            async with http_session(f"{url}/mcp") as session:
                assert len((await session.list_tools()).tools) == len(all_tools())
                result = await session.call_tool("campaign_create", SIMPLE_CAMPAIGN)
                assert result.structured_content["name"] == "demo"

        asyncio.run(scenario())


def test_tool_list_is_lean_and_portable(lab):
    """What every host loads and every model request carries: inlined input schemas with
    no type arrays (the Inspector's portability warnings), no titles, one-line
    descriptions, no output schemas; results still come as structuredContent."""
    async def scenario():
        async with Client(build_server(lab)) as client:
            return {t.name: t for t in await client.list_tools()}

    tools = asyncio.run(scenario())

    def walk(node):
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for tool in tools.values():
        assert tool.output_schema is None, tool.name
        assert "\n" not in tool.description, tool.name
        assert '"$ref"' not in json.dumps(tool.input_schema), tool.name
        for node in walk(tool.input_schema):
            assert not isinstance(node.get("type"), list), (tool.name, node)
            assert not isinstance(node.get("title"), str), (tool.name, node)
            assert "\n" not in str(node.get("description", "")), tool.name
    for tool in tools.values():  # the first paragraph of the docstring, never the whole of it
        assert len(tool.description) <= 130, (tool.name, len(tool.description))  # 100 + the job note
    # What a model is sent for the whole set (issue #13: at most 5k tokens, ~4 characters each).
    seen = sum(len(json.dumps({"name": t.name, "description": t.description, "inputSchema": t.input_schema},
                              separators=(",", ":"), ensure_ascii=False)) for t in tools.values())
    assert seen <= MODEL_SEES_AT_MOST, f"the full tool set is {seen} characters (~{seen // 4} tokens)"
    # A nested structure is one line of signature: its fields, optional ones marked, enums spelled out.
    objective = tools["campaign_create"].input_schema["properties"]["objective"]
    assert objective["type"] == "object" and "properties" not in objective
    assert 'direction: "max"|"min"' in objective["description"]
    assert "reported?: number" in objective["description"]  # optional; was anyOf [number, null]
    assert "min_effect = 0.0" in objective["description"]  # a default says the type and that it is optional
    assert tools["campaign_create"].input_schema["properties"]["held_out_paths"]["items"] == {"type": "string"}
    assert "job_wait" in tools["env_build"].description and "job_wait" not in tools["env_get"].description


def test_a_structure_is_spelled_out_once_and_its_referent_always_comes_along(lab):
    """campaign_update's objective is campaign_create's shape: hosts are sent its signature
    once. Every toolset that offers a tool referring to another's shape offers that other
    tool too, so a model always has the shape it is pointed to; the server still validates
    the referring parameter fully and names a wrong field."""
    async def scenario():
        async with Client(build_server(lab)) as client:
            tools = {t.name: t for t in await client.list_tools()}
            created = await client.call_tool("campaign_create", {
                "name": "c", "objective": {"metric": "acc", "direction": "max"},
                "evaluator": {"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]}})
            wrong = await client.call_tool("campaign_update", {
                "campaign": created.structured_content["id"],
                "objective": {"metric": "acc", "direction": "up"}}, raise_on_error=False)
            return tools, wrong

    tools, wrong = asyncio.run(scenario())
    objective = tools["campaign_update"].input_schema["properties"]["objective"]
    assert objective["description"].endswith("(shape as in campaign_create)")
    assert "direction" not in objective["description"].replace("metric, direction", "")
    assert wrong.is_error and "objective.direction" in wrong.content[0].text

    specs = all_tools()
    referents = {name: {node[SHAPE_IN] for node in spec.input_model.model_json_schema().get("properties", {}).values()
                        if SHAPE_IN in node}
                 for name, spec in specs.items()}
    assert referents["campaign_update"] == {"campaign_create"}
    for toolset in toolset_names():
        offered = select(toolset, set(specs))
        for name in offered:
            assert referents[name] <= offered, (toolset, name, referents[name] - offered)


def test_a_wrong_nested_field_is_named_in_the_error(lab):
    """The schema a host sees no longer spells out nested fields, so the server's own
    validation must say which one is wrong and what it expected."""
    async def scenario():
        async with Client(build_server(lab)) as client:
            return await client.call_tool("campaign_create", {
                "name": "c", "objective": {"metric": "acc", "direction": "up"},
                "evaluator": {"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]}},
                raise_on_error=False)

    result = asyncio.run(scenario())
    assert result.is_error
    text = result.content[0].text
    assert "objective.direction" in text and "'max' or 'min'" in text, text


def raw_post(url: str, headers: dict) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_http_refuses_forged_host_and_origin(tmp_path):
    with http_server(tmp_path / "lab") as (url, _):
        assert raw_post(f"{url}/mcp", {}) == 200
        assert raw_post(f"{url}/mcp", {"Host": "evil.example"}) == 421
        assert raw_post(f"{url}/mcp", {"Origin": "http://evil.example"}) == 403
        assert raw_post(f"{url}/mcp", {"Origin": url}) == 200


def test_http_token_is_required_when_set(tmp_path):
    with http_server(tmp_path / "lab", env={"SOTALAB_TOKEN": "s3cret"}) as (url, _):
        assert raw_post(f"{url}/mcp", {}) == 401
        assert raw_post(f"{url}/mcp", {"Authorization": "Bearer wrong"}) == 401
        assert raw_post(f"{url}/mcp", {"Authorization": "Bearer s3cret"}) == 200

        async def scenario():
            async with http_session(f"{url}/mcp", {"Authorization": "Bearer s3cret"}) as session:
                assert (await session.call_tool("lab_status", {})).structured_content["schema_version"] >= 1

        asyncio.run(scenario())


def test_non_loopback_bind_without_token_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SOTALAB_TOKEN"}
    result = subprocess.run([*sotalab_command(), "--home", str(tmp_path / "lab"), "serve", "--http",
                             "--host", "0.0.0.0", "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "without a bearer token" in result.stderr and "Traceback" not in result.stderr


def test_concurrent_http_clients_lose_no_trial(tmp_path):
    home = tmp_path / "lab"
    with http_server(home) as (url, _):
        async def setup():
            async with http_session(f"{url}/mcp") as session:
                await session.call_tool("campaign_create", SIMPLE_CAMPAIGN)
                await session.call_tool("trial_create", {"campaign": 1, "kind": "baseline"})

        async def writer(n: int):
            async with http_session(f"{url}/mcp") as session:
                for i in range(n):
                    result = await session.call_tool("trial_create", {"campaign": 1, "kind": "param",
                                                                      "hypothesis": f"w{i}"})
                    assert not result.is_error, result.content

        async def scenario():
            await setup()
            await asyncio.gather(*(writer(15) for _ in range(6)))

        asyncio.run(scenario())
    lab = Lab.open(home)
    assert lab.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 1 + 6 * 15
    assert lab.db.execute("SELECT COUNT(*) FROM journal WHERE ok = 0").fetchone()[0] == 0


def inspector(home, *args: str) -> dict:
    require(shutil.which("npx") is not None, "npx (Node.js) is needed for the MCP Inspector CLI")
    command = sotalab_command()
    result = subprocess.run(["npx", "-y", INSPECTOR, "--cli", "-e", f"SOTALAB_HOME={home}", *command, "serve",
                             "--toolset", "all", *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.slow
def test_inspector_cli_lists_and_calls(tmp_path):
    home = tmp_path / "lab"
    listed = inspector(home, "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == set(all_tools())
    called = inspector(home, "--method", "tools/call", "--tool-name", "lab_status")
    assert called["structuredContent"]["home"] == str(home.resolve())


def test_stdio_stdout_carries_only_protocol_messages(tmp_path):
    """Logs go to stderr: every line the server writes to stdout is a JSON-RPC message."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "campaign_get", "arguments": {"campaign": 5}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "lab_status", "arguments": {}}},
    ]
    proc = subprocess.Popen([*sotalab_command(), "--home", str(tmp_path / "lab"), "serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    replies = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                replies.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        proc.wait(30)
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[2]["result"]["isError"] is True
    assert by_id[3]["result"]["structuredContent"]["home"] == str((tmp_path / "lab").resolve())


def test_text_content_is_as_bounded_as_the_structured_result(lab):
    """The text block a host reads is the same JSON, not 6x longer in \\u escapes."""
    async def scenario():
        async with Client(build_server(lab)) as client:
            await client.call_tool("campaign_create", SIMPLE_CAMPAIGN)
            note = await client.call_tool("note_add", {"title": "学习率", "body": "学习率太高" * 1000})
            assert "学习率太高" in note.content[0].text
            assert len(note.content[0].text) < 10_000

    asyncio.run(scenario())
