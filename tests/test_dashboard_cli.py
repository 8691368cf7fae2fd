"""`sotalab dashboard`: a loopback server that prints the dashboard's URL, which serves it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

from conftest import sotalab_command
from mcp_helpers import free_port


def test_dashboard_prints_its_url_and_serves_the_page(tmp_path):
    port = free_port()
    env = {**os.environ, "SOTALAB_TOKEN": "set-for-serve-but-not-for-a-browser"}
    proc = subprocess.Popen([*sotalab_command(), "--home", str(tmp_path / "lab"), "dashboard", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/ui/"
        assert url in first, first
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = response.read().decode()
                    csp = response.headers["Content-Security-Policy"]
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert "<title>sotalab dashboard</title>" in page
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    finally:
        proc.terminate()
        proc.wait(timeout=20)
