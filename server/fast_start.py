"""Answer a stdio host's first questions before the server has finished importing.

Importing the MCP SDK's protocol types and fastmcp takes one to three seconds, and hosts
decide in that time: a headless Claude Code run sends its first model request without
the tools of a server that has not listed them yet. What a host asks first
(``initialize``, then ``tools/list`` and ``prompts/list``) is the same for every start
of the same sotalab, so this front answers it from what the real server answered last
time, while the real server imports in the main thread.

How, in one picture::

    host stdin --> in-pump --(everything else)--> pipe --> real server (fd 0)
                      |  cached answers                          |
    host stdout <-- writer lock <-- out-pump <-- pipe <-- real server (fd 1)

The real server runs unmodified on its usual stdio transport, reading and writing the
pipes that replace fds 0 and 1. The host's ``initialize`` is replayed to it under an id
of our own (its answer is dropped), so its session state is exactly that of a normal
start. A cache is a file in the lab home keyed by everything the answers depend on
(sotalab's source files, the SDK versions, the toolset); a miss forwards everything and
records the real answers for the next start.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CACHEABLE = ("initialize", "tools/list", "prompts/list")
REPLAY_ID = "sotalab-fast-start-initialize"


def cache_key(toolset: str) -> str:
    """What the first answers depend on: the code and data that define the tools and
    prompts (by path, size and modification time), the SDK versions, Python, the toolset."""
    from sotalab.tools import PACKAGE_ROOT

    digest = hashlib.sha256(f"{sys.version}\0{toolset}\0".encode())
    for dist in ("sotalab", "mcp", "fastmcp", "pydantic"):
        try:
            digest.update(f"{dist}={version(dist)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{dist}=?\0".encode())
    for folder in (Path(__file__).parent, PACKAGE_ROOT / "tools", PACKAGE_ROOT / "skills"):
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


class StdioFront:
    def __init__(self, cache_file: Path, key: str):
        self.cache_file, self.key = cache_file, key
        self.answers = self._load()  # protocol version -> method -> result
        self.version: str | None = None  # the session's, once the host has initialized
        self.pending: dict = {}  # id -> (version, method) of forwarded requests worth recording
        self.lock = threading.Lock()
        # The host's ends, kept on fds of our own; the real server gets pipes on 0 and 1.
        self.host_in = os.fdopen(os.dup(0), "rb")
        self.host_out = os.fdopen(os.dup(1), "wb")
        server_in, to_server = os.pipe()
        self.to_server = os.fdopen(to_server, "wb")
        self.from_server, server_out = os.pipe()
        os.dup2(server_in, 0)
        os.dup2(server_out, 1)
        os.close(server_in)
        os.close(server_out)
        self.out_pump = threading.Thread(target=self._pump_out, name="stdio-front-out", daemon=True)
        threading.Thread(target=self._pump_in, name="stdio-front-in", daemon=True).start()
        self.out_pump.start()

    def finish(self) -> None:
        """After the real server returned: let the last of its output reach the host."""
        try:
            sys.stdout.flush()
        finally:
            os.close(1)
        self.out_pump.join(timeout=5)

    def _load(self) -> dict:
        try:
            saved = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict) or saved.get("key") != self.key or not isinstance(saved.get("answers"), dict):
            return {}
        return {protocol: known for protocol, known in saved["answers"].items() if isinstance(known, dict)}

    def _send_host(self, data: bytes) -> None:
        with self.lock:
            self.host_out.write(data)
            self.host_out.flush()

    def _pump_in(self) -> None:
        try:
            for line in self.host_in:
                self._from_host(line)
        except OSError:
            pass  # the real server ended first; its own exit says why
        finally:
            try:
                self.to_server.close()  # the host is gone: the real server sees end of input
            except OSError:
                pass

    def _to_server(self, data: bytes) -> None:
        self.to_server.write(data if data.endswith(b"\n") else data + b"\n")
        self.to_server.flush()

    def _from_host(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or "id" not in message or not isinstance(message.get("method"), str):
            self._to_server(line)  # notifications, responses, batches, anything odd
            return
        method, params = message["method"], message.get("params") or {}
        if method == "initialize":
            self.version = str(params.get("protocolVersion"))
            known = self.answers.get(self.version, {})
            if "initialize" in known and "tools/list" in known:
                self._answer(message["id"], known["initialize"])
                self._to_server(json.dumps({**message, "id": REPLAY_ID}).encode())
                return
        elif method in CACHEABLE and not params.get("cursor") and self.version is not None:
            known = self.answers.get(self.version, {})
            if method in known:
                self._answer(message["id"], known[method])
                return
        if method in CACHEABLE and not params.get("cursor") and self.version is not None:
            self.pending[json.dumps(message["id"])] = (self.version, method)
        self._to_server(line)

    def _answer(self, request_id, result) -> None:
        self._send_host(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode() + b"\n")

    def _pump_out(self) -> None:
        with os.fdopen(self.from_server, "rb") as server:
            for line in server:
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if isinstance(message, dict) and "id" in message and "method" not in message:
                    if message["id"] == REPLAY_ID:
                        continue  # the host already has its answer
                    self._record(message)
                self._send_host(line)

    def _record(self, response: dict) -> None:
        asked = self.pending.pop(json.dumps(response["id"]), None)
        if asked is None or "result" not in response:
            return
        protocol, method = asked
        self.answers.setdefault(protocol, {})[method] = response["result"]
        if {"initialize", "tools/list"} <= set(self.answers[protocol]):
            self._save()

    def _save(self) -> None:
        try:
            tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"key": self.key, "answers": self.answers}))
            os.replace(tmp, self.cache_file)
        except OSError:
            pass  # a read-only lab home: every start is simply a cold one


def start(home: Path, toolset: str) -> StdioFront | None:
    """The front for a stdio server of ``toolset`` whose lab lives in ``home``;
    SOTALAB_NO_FAST_START=1 turns it off (the server then answers everything itself)."""
    if os.environ.get("SOTALAB_NO_FAST_START"):
        return None
    return StdioFront(home / "server-start.json", cache_key(toolset))
