"""What every request passes before a route sees it: the bearer token, then the body size limit.

Both are plain ASGI middlewares: Starlette's ``BaseHTTPMiddleware`` would
pass every streamed (SSE) response through an extra task and memory stream.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .http_errors import ApiError, error_response


class BearerAuth:
    """Refuse, with 401 and a JSON body, any request without ``Authorization: Bearer <token>``.

    The comparison takes the same time whatever the token sent, so that
    timing does not reveal how much of it was right.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(_header(scope, b"authorization"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = error_response(401, problem, {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _problem(self, header: bytes | None) -> str | None:
        if header is None:
            return "missing bearer token: send the header 'Authorization: Bearer <token>'"
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return "the Authorization header must use the Bearer scheme"
        if not hmac.compare_digest(credentials.strip(), self.token):
            return "invalid bearer token"
        return None


class BodyLimit:
    """Refuse request bodies above ``max_body`` bytes with 413.

    A declared ``Content-Length`` above the limit is refused before the body
    is read; a body sent without one (chunked) is counted as it arrives and
    refused as soon as it passes the limit, so no request can make the
    server hold more than ``max_body`` bytes of it.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, f"invalid Content-Length header {declared.decode()!r}")(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_body:
                await error_response(413, self._too_large(f"{int(declared)} bytes"))(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise ApiError(413, self._too_large(f"more than {self.max_body} bytes"))
            return message

        await self.app(scope, counted, send)

    def _too_large(self, size: str) -> str:
        limit = f"the limit is {self.max_body} bytes ([service.chat.http] max_body)"
        return f"request body too large: {size}, {limit}"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
