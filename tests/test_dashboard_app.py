"""The dashboard as an MCP App, in a page that hosts it the way MCP hosts do: through the
official host-side bridge (`AppBridge` from `@modelcontextprotocol/ext-apps`, pinned,
from npm) in a real headless Chromium. The tool result and the app's HTML come from
the real server over MCP stdio (the official SDK); the app must render the result it
is sent and call tools back through the host."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import shutil
import subprocess
import threading

import pytest

from browser import CHROMIUM, Browser
from conftest import require
from demo_lab import demo_campaign, finished_demo_lab
from mcp_helpers import stdio_session
from sotalab.server.dashboard import DASHBOARD_URI
from sotalab.tools.home import Lab

pytestmark = pytest.mark.slow
# The host side, pinned: the bridge and the MCP SDK packages it runs on, and the bundler.
NPM_PACKAGES = ["@modelcontextprotocol/ext-apps@2.0.4", "@modelcontextprotocol/client@2.4.0",
                "@modelcontextprotocol/core@2.4.0", "zod@4.6.7", "esbuild@0.28.2"]
HOST_JS = """
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";
window.hostLog = [];
window.startHost = async (html, toolArguments, toolResult, toolResults) => {
  const iframe = document.createElement("iframe");
  iframe.id = "app";
  iframe.setAttribute("sandbox", "allow-scripts allow-same-origin");
  iframe.style.cssText = "width: 1000px; height: 1300px; border: 0";
  document.body.append(iframe);
  const bridge = new AppBridge(null, { name: "sotalab-test-host", version: "1.0.0" }, { serverTools: {} });
  bridge.oncalltool = async (params) => {
    window.hostLog.push(params.name);
    return toolResults[params.name]
      ?? { content: [{ type: "text", text: `this test host has no ${params.name}` }], isError: true };
  };
  bridge.oninitialized = async () => {
    window.hostLog.push("initialized");
    await bridge.sendToolInput({ arguments: toolArguments });
    await bridge.sendToolResult(toolResult);
  };
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = html;
};
"""
HOST_HTML = "<!doctype html><meta charset='utf-8'><title>test host</title><script src='host.bundle.js'></script>"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def host_page(tmp_path_factory):
    """A folder served on loopback with the host page and the bundled AppBridge."""
    require(CHROMIUM is not None, "the MCP App test needs Chromium (Debian package chromium)")
    require(shutil.which("npm") is not None, "the MCP App test installs the official bridge with npm")
    folder = tmp_path_factory.mktemp("mcp-app-host")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *NPM_PACKAGES],
                   check=True, capture_output=True, timeout=600)
    (folder / "host.js").write_text(HOST_JS)
    (folder / "host.html").write_text(HOST_HTML)
    (folder / "favicon.ico").write_bytes(b"")  # the browser asks for it; a 404 would be a console error
    subprocess.run([str(folder / "node_modules" / ".bin" / "esbuild"), "host.js", "--bundle", "--format=iife",
                    "--outfile=host.bundle.js", "--log-level=error"], cwd=folder, check=True, timeout=120)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/host.html"
    server.shutdown()


@pytest.fixture(scope="module")
def from_server(tmp_path_factory):
    """What a host gets from sotalab over MCP: the tool's UI link, the app's HTML, the
    campaign_view result, and a committed workspace_diff result for the app to ask for."""
    home = finished_demo_lab(tmp_path_factory)
    lab = Lab.open(home)
    cid = demo_campaign(lab)
    winner = lab.db.execute("SELECT trial_id FROM finalizations WHERE campaign_id = ? ORDER BY id DESC",
                            [cid]).fetchone()[0]

    async def ask():
        async with stdio_session(home) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            resource = await session.read_resource(DASHBOARD_URI)
            view = await session.call_tool("campaign_view", {"campaign": cid})
            patch = await session.call_tool("workspace_diff", {"trial": winner, "committed": True})
            return tools["campaign_view"], resource, view, patch

    tool, resource, view, patch = asyncio.run(ask())
    return {"campaign": cid, "winner": winner, "meta": tool.meta, "resource": resource.contents[0],
            "view": json.loads(view.model_dump_json(by_alias=True, exclude_none=True)),
            "patch": json.loads(patch.model_dump_json(by_alias=True, exclude_none=True))}


def test_the_campaign_view_tool_names_the_app(from_server):
    assert from_server["meta"]["ui"]["resourceUri"] == DASHBOARD_URI
    resource = from_server["resource"]
    assert resource.mime_type == "text/html;profile=mcp-app"
    assert "<script src" not in resource.text and "Content-Security-Policy" in resource.text


def test_the_app_renders_the_tool_result_it_is_sent(from_server, host_page, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(host_page)
        browser.wait_for("typeof window.startHost === 'function'")
        tool_results = {"campaign_view": from_server["view"], "workspace_diff": from_server["patch"]}
        browser.evaluate(f"window.startHost({json.dumps(from_server['resource'].text)}, "
                         f"{json.dumps({'campaign': from_server['campaign']})}, {json.dumps(from_server['view'])}, "
                         f"{json.dumps(tool_results)})")
        app = "document.getElementById('app').contentDocument"
        shown = browser.wait_for(f"{app}.getElementById('reproduced')?.textContent")
        view = from_server["view"]["structuredContent"]
        assert shown == f"{view['baseline']['reproduced']:.4f}"
        assert browser.evaluate(f"{app}.querySelectorAll('tr[data-trial]').length") == len(view["trials"])
        assert "initialized" in browser.evaluate("window.hostLog")
        # The app calls tools back through the host: a click on the winner asks for its diff.
        winner = from_server["winner"]
        browser.evaluate(f"{app}.querySelector('g.tree-node[data-trial=\"{winner}\"]')"
                         ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        diff = browser.wait_for(f"{app}.getElementById('diff')?.textContent")
        assert diff.strip() == from_server["patch"]["structuredContent"]["diff"].strip()
        assert "workspace_diff" in browser.evaluate("window.hostLog")
        # And it keeps itself current by polling campaign_view through the host.
        browser.wait_for("window.hostLog.includes('campaign_view')", timeout=20)
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
