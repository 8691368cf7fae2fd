"""The sotalab dashboard, behind two doors, from one page (server/ui/).

- An MCP App: the resource ``ui://sotalab/dashboard.html`` and the ``campaign_view``
  tool that names it (``_meta.ui.resourceUri``), so hosts that support MCP Apps render
  the dashboard inline when that tool is called.
- A web page at ``/ui/`` on ``sotalab serve --http``, behind the same Host/Origin guard
  and bearer token as ``/mcp`` (they wrap the whole HTTP app), reading the lab through
  ``POST /ui/api/<tool>``: a handful of read-only lab tools, run through ``invoke``
  exactly as over MCP.

The page is one self-contained document (CSS and JS inlined, no CDN): hosts load an
app's HTML into a sandboxed iframe with nothing beside it. Its Content-Security-Policy
allows only that inline script and style, by hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from importlib.resources import files

import anyio
from fastmcp import FastMCP
from fastmcp.apps import UI_MIME_TYPE, AppConfig, ResourceCSP
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sotalab.tools.errors import LabError
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke
from sotalab.tools.registry import all_tools

DASHBOARD_URI = "ui://sotalab/dashboard.html"
APP_TOOLS = frozenset({"campaign_view"})
# What the page reads; every one is a read-only tool (checked when the routes are added).
API_TOOLS = frozenset({"campaign_get", "campaign_view", "workspace_diff", "audit_get", "run_wait", "run_logs"})
MAX_API_BODY = 64 * 1024


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def page() -> tuple[str, str]:
    """(the dashboard document, its Content-Security-Policy)."""
    ui = files("sotalab.server") / "ui"
    css, js = (ui / "dashboard.css").read_text(), (ui / "dashboard.js").read_text()
    csp = (f"default-src 'none'; script-src {_sha256(js)}; style-src {_sha256(css)}; img-src data:; "
           "connect-src 'self'; base-uri 'none'; form-action 'none'")
    document = (ui / "index.html").read_text().replace("{csp}", csp).replace("{css}", css).replace("{js}", js)
    return document, csp


def tool_meta(name: str) -> dict | None:
    """The MCP Apps metadata of a tool: the dashboard for the campaign view."""
    return {"ui": {"resourceUri": DASHBOARD_URI}} if name in APP_TOOLS else None


async def _api(lab: Lab, request: Request) -> Response:
    name = request.path_params["tool"]
    if name not in API_TOOLS:
        return JSONResponse({"error": f"{name!r} is not available to the dashboard"}, status_code=404)
    body = await request.body()
    if len(body) > MAX_API_BODY:
        return JSONResponse({"error": f"request body over {MAX_API_BODY} bytes"}, status_code=413)
    try:
        arguments = json.loads(body or b"{}")
    except ValueError:
        return JSONResponse({"error": "the body must be one JSON object of tool arguments"}, status_code=400)
    if name == "run_wait" and isinstance(arguments, dict) and arguments.get("run") is not None:
        arguments = {**arguments, "timeout_s": 0}  # the page reads a run's status; it never holds a thread waiting
    try:
        result = await anyio.to_thread.run_sync(invoke, lab, name, arguments)
    except LabError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


def register(mcp: FastMCP, lab: Lab) -> None:
    """Add the MCP App resource and the /ui routes to ``mcp``."""
    tools = all_tools()
    writable = sorted(name for name in API_TOOLS if not tools[name].read_only)
    if writable:
        raise RuntimeError(f"the dashboard API may only run read-only tools, not {writable}")

    @mcp.resource(DASHBOARD_URI, name="sotalab_dashboard", mime_type=UI_MIME_TYPE,
                  description="The sotalab dashboard (MCP App): campaigns, scores, lineage, runs, audits",
                  app=AppConfig(csp=ResourceCSP(), prefers_border=True))
    def dashboard_resource() -> str:
        return page()[0]

    @mcp.custom_route("/ui", methods=["GET"])
    async def ui_root(request: Request) -> Response:
        return RedirectResponse(request.url.path + "/")

    @mcp.custom_route("/ui/", methods=["GET"])
    async def ui_page(request: Request) -> Response:
        document, csp = page()
        return HTMLResponse(document, headers={
            "Content-Security-Policy": csp + "; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    @mcp.custom_route("/ui/api/{tool}", methods=["POST"])
    async def ui_api(request: Request) -> Response:
        return await _api(lab, request)
