"""HTTP transport: bearer-token check, the rule for non-loopback binds, and clean replies
to notifications."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenMiddleware:
    """Refuse every HTTP request that does not carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                        headers={"WWW-Authenticate": 'Bearer realm="sotalab"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BareAcceptedMiddleware:
    """A 202 Accepted (the reply to a notification or a response) carries no body, so it
    carries no ``content-type`` either: the SDK labels it JSON, and clients that see a
    JSON type try to parse the empty body and log a parse error."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_bare_202(message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 202:
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                                  if k.lower() != b"content-type"]}
            await send(message)

        await self.app(scope, receive, send_bare_202)
