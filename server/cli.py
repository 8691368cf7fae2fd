"""The `sotalab` command: serve over MCP, and let a person list, call and check tools."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

EXIT_USAGE = 2


def _fail(message: str, code: int = 1) -> int:
    print(f"sotalab: {message}", file=sys.stderr)
    return code


def _open_lab(args):
    from sotalab.tools.home import Lab

    return Lab.open(args.home)


def cmd_serve(args) -> int:
    token = args.token or os.environ.get("SOTALAB_TOKEN")
    if args.http:
        from .http_auth import is_loopback

        if not is_loopback(args.host) and not token:
            return _fail(f"refusing to serve on non-loopback address {args.host} without a bearer token; "
                         "pass --token or set SOTALAB_TOKEN", EXIT_USAGE)
    if getattr(args, "allow_weak_sandbox", False):  # read where runs are submitted (runs/sandbox.weak_allowed)
        os.environ["SOTALAB_ALLOW_WEAK_SANDBOX"] = "1"
    # Start-up allocates hundreds of thousands of long-lived objects (fastmcp, the SDK's
    # types, every tool's models); collecting them as they appear is wasted work. Freeze
    # them once built instead: about 150 ms less before the first answer.
    gc.disable()
    lab = _open_lab(args)
    front = None
    if not args.http:  # answers the host's first questions while the imports below run
        from . import fast_start

        front = fast_start.start(lab.home, args.toolset)
    from .app import build_server

    mcp = build_server(lab, long_lived=True, toolset=args.toolset)
    gc.freeze()
    gc.enable()
    # Hosts log whatever a stdio server writes to stderr as errors: quiet unless asked.
    log_level = args.log_level.upper()
    if not args.http:
        try:
            mcp.run("stdio", show_banner=False, log_level=log_level)
        finally:
            if front is not None:
                front.finish()
        return 0
    from starlette.middleware import Middleware

    from .http_auth import BareAcceptedMiddleware, BearerTokenMiddleware

    middleware = [Middleware(BareAcceptedMiddleware)]
    middleware += [Middleware(BearerTokenMiddleware, token=token)] if token else []
    print(f"sotalab: serving {lab.home} on http://{args.host}:{args.port}/mcp", file=sys.stderr)
    mcp.run("http", show_banner=False, host=args.host, port=args.port, middleware=middleware,
            host_origin_protection=True, allowed_hosts=[args.host, *args.allowed_host],
            allowed_origins=args.allowed_origin or None, log_level=log_level)
    return 0


def cmd_dashboard(args) -> int:
    """`sotalab serve --http` on loopback, announcing the dashboard's URL."""
    url = f"http://127.0.0.1:{args.port}/ui/"
    print(f"sotalab: dashboard of {_open_lab(args).home} at {url} (Ctrl-C stops it)", flush=True)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, [url]).start()
    # Loopback only and no bearer token: a browser cannot send one when it opens a URL.
    os.environ.pop("SOTALAB_TOKEN", None)
    args.http, args.host, args.token, args.allowed_host, args.allowed_origin = True, "127.0.0.1", None, [], []
    args.toolset, args.log_level = "default", "warning"
    return cmd_serve(args)


def cmd_export(args) -> int:
    from sotalab.tools.mlflow_export import export

    result = export(_open_lab(args), args.campaign, args.tracking_uri)
    print(f"campaign {result.campaign} -> MLflow {result.tracking_uri}, experiment {result.experiment!r} "
          f"(id {result.experiment_id}): {result.created} run(s) created, {result.updated} updated")
    return 0


def cmd_tools(args) -> int:
    from pydantic import TypeAdapter

    from sotalab.tools.registry import all_tools

    from .toolsets import select

    specs = all_tools()
    chosen = select(args.toolset, set(specs)) if args.toolset else set(specs)
    tools = sorted((s for s in specs.values() if s.name in chosen), key=lambda s: s.name)
    if args.json:
        print(json.dumps([{
            "name": s.name,
            "description": s.description,
            "annotations": {"readOnlyHint": s.read_only, "destructiveHint": s.destructive,
                            "idempotentHint": s.idempotent, "openWorldHint": s.open_world},
            "inputSchema": s.input_model.model_json_schema(),
            "outputSchema": TypeAdapter(s.output_model).json_schema(mode="serialization"),
        } for s in tools], indent=1))
        return 0
    width = max(len(s.name) for s in tools)
    for s in tools:
        print(f"{s.name:<{width}}  {s.summary}")
    return 0


def cmd_call(args) -> int:
    from sotalab.tools.errors import LabError
    from sotalab.tools.invoke import invoke

    try:
        arguments = json.loads(args.arguments) if args.arguments else {}
    except json.JSONDecodeError as exc:
        return _fail(f"arguments are not valid JSON ({exc.msg} at character {exc.pos}); "
                     "pass one JSON object, e.g. '{\"campaign\": 1}'", EXIT_USAGE)
    lab = _open_lab(args)

    def progress(done, total=None, message=None):
        print(f"  … {done:g}{f'/{total:g}' if total else ''} {message or ''}", file=sys.stderr)

    try:
        result = invoke(lab, args.tool, arguments, progress)
    except LabError as exc:
        return _fail(str(exc))
    print(json.dumps(result, indent=2))
    return 0


def cmd_doctor(args) -> int:
    from sotalab.tools.invoke import invoke

    status = invoke(_open_lab(args), "lab_status", {})
    print(f"home            {status['home']}")
    print(f"schema version  {status['schema_version']}")
    print(f"local sandbox   {status['local_sandbox']}")
    print("counts          " + ", ".join(f"{k}={v}" for k, v in status["counts"].items()))
    print()
    for cap in status["capabilities"]:
        mark = "ok " if cap["available"] else "-- "
        print(f"{mark} {cap['name']:<11} {cap['detail']}")
    return 0


def cmd_install(args) -> int:
    from .install import install_main

    return install_main(args.rest)


def cmd_demo(args) -> int:
    from sotalab.client.demo import main as demo_main

    return demo_main((["--home", args.home] if args.home else []) + args.rest)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --home given before the subcommand must survive the subparser's defaults.
    common.add_argument("--home", default=argparse.SUPPRESS,
                        help="lab home directory (default: $SOTALAB_HOME, else the platform data dir)")
    parser = argparse.ArgumentParser(prog="sotalab", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    serve.add_argument("--http", action="store_true", help="speak streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--token", help="bearer token required on every HTTP request (or $SOTALAB_TOKEN)")
    serve.add_argument("--allowed-host", action="append", default=[], help="extra Host header value to accept")
    serve.add_argument("--allowed-origin", action="append", default=[], help="browser Origin to accept")
    serve.add_argument("--toolset", default=os.environ.get("SOTALAB_TOOLSET") or "default",
                       help="which tools to offer, comma-separated: default (25 tools), all, an area (lab, papers, "
                            "code, envs, runs, evaluation) or a role (init, scheduler, ...); "
                            "default: $SOTALAB_TOOLSET, else 'default'")
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                       help="what the server logs to stderr (default: warning)")
    serve.add_argument("--allow-weak-sandbox", action="store_true",
                       help="run untrusted code even where a sandbox layer is missing (lab_status names it; see docs/runs.md)")
    serve.set_defaults(run=cmd_serve)

    tools = sub.add_parser("tools", parents=[common], help="list the tools")
    tools.add_argument("--json", action="store_true", help="full schemas and annotations as JSON")
    tools.add_argument("--toolset", help="only the tools `serve --toolset` would offer with this value")
    tools.set_defaults(run=cmd_tools)

    call = sub.add_parser("call", parents=[common], help="call a tool through the same path as MCP")
    call.add_argument("tool")
    call.add_argument("arguments", nargs="?", help="one JSON object")
    call.set_defaults(run=cmd_call)

    doctor = sub.add_parser("doctor", parents=[common], help="what this machine offers the lab")
    doctor.set_defaults(run=cmd_doctor)

    dashboard = sub.add_parser("dashboard", parents=[common], help="serve the dashboard on loopback and print its URL")
    dashboard.add_argument("--port", type=int, default=8765)
    dashboard.add_argument("--open", action="store_true", help="open it in the default browser")
    dashboard.set_defaults(run=cmd_dashboard)

    export = sub.add_parser("export", parents=[common], help="export a campaign to another tool")
    targets = export.add_subparsers(dest="target", required=True)
    mlflow = targets.add_parser("mlflow", parents=[common], help="each trial as an MLflow run (needs sotalab[mlflow])")
    mlflow.add_argument("--campaign", type=int, required=True, help="campaign id")
    mlflow.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite in the lab home)")
    mlflow.set_defaults(run=cmd_export)

    # These two parse their own options; the rest of the command line is passed through.
    sub.add_parser("install", help="add sotalab to a host's MCP config (see `sotalab install -h`)",
                   add_help=False).set_defaults(run=cmd_install)
    sub.add_parser("demo", parents=[common], help="the end-to-end demo over MCP (see `sotalab demo -h`)",
                   add_help=False).set_defaults(run=cmd_demo)
    return parser


PASS_THROUGH = {"install", "demo"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in PASS_THROUGH and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    args.home = getattr(args, "home", None)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader (`| head`) stopped early: end quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Exception as exc:  # one line for a person, never a traceback
        from sotalab.tools.errors import LabError

        if isinstance(exc, LabError):
            return _fail(str(exc))
        return _fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
