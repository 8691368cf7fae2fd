"""A wheel built from the repository installs into a fresh venv, serves its tools, and
finds its bundled data (skills, sandbox images, client configs) inside the install."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import REPO, require
from sotalab.tools.registry import all_tools


@pytest.mark.slow
def test_wheel_installs_serves_and_finds_its_data(tmp_path):
    require(shutil.which("uv") is not None, "uv builds the wheel and the fresh venv")
    dist = tmp_path / "dist"
    subprocess.run(["uv", "build", "--wheel", "--out-dir", str(dist), str(REPO)], check=True,
                   capture_output=True, timeout=300)
    wheel = next(dist.glob("sotalab-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], check=True, timeout=120)
    subprocess.run(["uv", "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(wheel)],
                   check=True, timeout=600)
    python = str(venv / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import json, sotalab.tools as t; print(json.dumps({'root': str(t.PACKAGE_ROOT), "
                       "'skills': sorted(p.name for p in t.data_path('skills').iterdir() if p.is_dir()), "
                       "'images': sorted(p.name for p in t.data_path('sandbox_images').iterdir()), "
                       "'clients': t.data_path('clients').is_dir(), "
                       "'hook': __import__('sotalab.tools.evaluation.steps', fromlist=['x']).HOOK_DIR"
                       ".joinpath('sitecustomize.py').is_file()}))"],
        capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert str(venv) in found["root"], "data must come from the install, not the checkout"
    assert found["clients"] and found["skills"] and found["images"] and found["hook"], found

    home = tmp_path / "lab"

    async def scenario():
        params = StdioServerParameters(command=str(venv / "bin" / "sotalab"), args=["serve", "--toolset", "all"],
                                       env={"SOTALAB_HOME": str(home)}, cwd=str(tmp_path))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == set(all_tools())
            status = await session.call_tool("lab_status", {})
            assert status.structured_content["home"] == str(home.resolve())

    asyncio.run(scenario())


def test_every_python_package_is_in_the_wheel_list():
    import tomllib

    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = set()
    for top, name in (("tools", "sotalab.tools"), ("server", "sotalab.server"), ("clients/python", "sotalab.client")):
        for init in (REPO / top).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / top)
            on_disk.add(".".join([name, *relative.parts]))
    assert on_disk <= declared, f"add to [tool.setuptools] packages: {sorted(on_disk - declared)}"
