"""A real headless Chromium driven over the DevTools protocol, for the dashboard tests.

It records what a user could not see but a test must: every request the page made,
console errors, uncaught exceptions and browser log errors (CSP violations land there).
"""

from __future__ import annotations

import base64
import itertools
import json
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--window-size=1100,1400"]


class PageError(AssertionError):
    pass


class Browser:
    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        self.ids = itertools.count(1)
        self.replies: dict[int, queue.Queue] = {}
        self.requests: list[str] = []
        self.errors: list[str] = []
        try:  # a browser that started must not outlive a failed connection
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=30)
            threading.Thread(target=self._read, daemon=True).start()
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        try:
            for message in self.ws:
                data = json.loads(message)
                if "id" in data:
                    self.replies[data["id"]].put(data)
                else:
                    self._event(data["method"], data.get("params", {}))
        except Exception:
            pass  # the connection closed with the browser

    def _event(self, method: str, params: dict) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')})")

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        message_id = next(self.ids)
        replies = self.replies[message_id] = queue.Queue()
        try:
            self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
            reply = replies.get(timeout=timeout)
        finally:
            del self.replies[message_id]
        if "error" in reply:
            raise PageError(f"{method}: {reply['error']}")
        return reply["result"]

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise PageError(f"{expression[:80]}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        """Poll ``expression`` until it is truthy; returns its value (true for an element)."""
        deadline = time.monotonic() + timeout
        last = None
        probe = f"(() => {{ const value = ({expression}); return value instanceof Node ? true : value; }})()"
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(probe)
            except PageError as exc:
                last = exc
            if last and not isinstance(last, PageError):
                return last
            time.sleep(0.2)
        raise PageError(f"timed out waiting for {expression[:120]!r} (last: {last!r}; page errors: {self.errors})")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
