"""A lab home holding the demo's finished campaign (`sotalab demo`, the real thing over
MCP stdio), built once per test session and shared by the dashboard, report and
MLflow tests, which only read it or add to it."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from conftest import require
from sotalab.client import demo
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke

HOSTILE = ('<script>window.pwned = "script"</script><img src=x onerror="window.pwned = \'img\'">'
           "</td></tr><b>bold</b> ``` | pipe [link](javascript:alert(1))")


def finished_demo_lab(tmp_path_factory) -> Path:
    """The lab home; the demo runs on the first call of the session."""
    require(shutil.which("uv") is not None, "the demo builds the example's venv with uv")
    home = tmp_path_factory.getbasetemp() / "finished-demo" / "lab"
    done, failed = home.parent / "demo-finished", home.parent / "demo-failed"
    if not done.exists() and not failed.exists():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = demo.main(["--home", str(home)])
        (done if code == 0 else failed).write_text(out.getvalue())
    assert not failed.exists(), f"the demo failed (once for the session):\n{failed.read_text()[-3000:]}"
    return home


def demo_campaign(lab: Lab) -> int:
    return lab.db.execute("SELECT id FROM campaigns WHERE name = ?", [demo.CAMPAIGN_NAME]).fetchone()[0]


def call(lab: Lab, tool: str, /, **arguments):
    return invoke(lab, tool, arguments)
