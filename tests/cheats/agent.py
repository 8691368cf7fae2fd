"""An agent's side of the MCP connection: the in-memory fastmcp client, held open in a
thread of its own so that a test can drive the server one call at a time, exactly as a
host would (every call goes through tools/list's schemas, validation and the journal)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from fastmcp import Client

from sotalab.client.session import is_job_handle
from sotalab.server.app import build_server
from sotalab.tools.home import Lab


class Refused(Exception):
    """The server answered a tool call with an error (the text the model would read)."""


class Agent:
    def __init__(self, lab: Lab):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = Client(build_server(lab))
        self._submit(self._client.__aenter__())

    def _submit(self, coroutine):
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def call(self, tool: str, /, **arguments) -> dict:
        """The tool's structured result; a tool error raises ``Refused`` with its text."""
        result = self._submit(self._client.call_tool(tool, arguments, raise_on_error=False))
        if result.is_error:
            raise Refused(result.content[0].text)
        outcome = result.structured_content
        while is_job_handle(tool, outcome):  # a long tool answers with a job: follow it, as a host would
            if outcome["status"] != "running":
                if outcome["status"] != "succeeded":
                    raise Refused(outcome["error"])
                return outcome["result"]
            outcome = self.call("job_wait", job=outcome["job"], timeout_s=20)
        return outcome

    def close(self) -> None:
        self._submit(self._client.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
