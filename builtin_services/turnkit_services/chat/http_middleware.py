"""What every request passes before a route sees it: the catch-all, the bearer token, the body's limits.

All are plain ASGI middlewares: Starlette's ``BaseHTTPMiddleware`` would
pass every streamed (SSE) response through an extra task and memory stream.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .http_errors import ApiError, brief, error_response, internal_error


class BearerAuth:
    """Refuse, with 401 and a JSON body, any request without ``Authorization: Bearer <token>``.

    The comparison takes the same time whatever the token sent, so that
    timing does not reveal how much of it was right. Requests to
    ``open_routes`` (other channels' webhooks, which the platforms sign
    instead) pass without it, and so do those to ``open_paths``: a path
    itself, or, for one ending in ``*``, every path starting with what
    precedes it (the runtime's web apps' pages and assets, which hold no data).
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_routes: Sequence[BaseRoute] = (),
        open_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.open_routes = tuple(open_routes)
        self.open_paths = frozenset(p for p in open_paths if not p.endswith("*"))
        self.open_prefixes = tuple(p.removesuffix("*") for p in open_paths if p.endswith("*"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self.open_paths
            or path.startswith(self.open_prefixes)
            or any(route.matches(scope)[0] != Match.NONE for route in self.open_routes)
        ):
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


class BodyLimits:
    """Bound a request body in size (``max_body``, 413) and in time (``read_timeout``, 408).

    A declared ``Content-Length`` above the limit is refused before the body
    is read; a body sent without one (chunked) is counted as it arrives and
    refused as soon as it passes the limit, so no request can make the
    server hold more than ``max_body`` bytes of it. The whole body must
    arrive within ``read_timeout`` seconds of the route starting to read
    it (the routes read it first thing): a client
    that declares more than it sends, or sends a byte at a time, would
    otherwise hold a connection and a task for as long as it pleased; the
    408 closes the connection, on which nothing more is coming. Other
    refusals given before the body arrived keep it: the server knows the
    body's framing, and reads the rest of it as the end of this request,
    never as the next one.
    """

    def __init__(self, app: ASGIApp, max_body: int, read_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        pending = declared not in (None, b"0") or _header(scope, b"transfer-encoding") is not None
        deadline: float | None = None
        received = 0

        if declared is not None:
            if not declared.isdigit():
                problem = f"invalid Content-Length header {brief(declared.decode('latin-1'), 40)!r}"
                await error_response(400, problem)(scope, receive, send)
                return
            if int(declared) > self.max_body:
                await error_response(413, self._too_large(f"{int(declared)} bytes"))(scope, receive, send)
                return

        async def limited() -> Message:
            nonlocal deadline, received, pending
            if not pending:  # the body is whole: later reads wait for a disconnect, untimed
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.read_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ApiError(408, self._too_slow(received, declared), {"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise ApiError(413, self._too_large(f"more than {self.max_body} bytes"))
                pending = message.get("more_body", False)
            return message

        await self.app(scope, limited, send)

    def _too_large(self, size: str) -> str:
        limit = f"the limit is {self.max_body} bytes ([service.chat.http] max_body)"
        return f"request body too large: {size}, {limit}"

    def _too_slow(self, received: int, declared: bytes | None) -> str:
        of = f" of {int(declared)}" if declared is not None else ""
        return (
            f"request body not received within {self.read_timeout:g} s ([service.chat.http] read_timeout):"
            f" {received}{of} bytes arrived"
        )


class CatchAll:
    """Answer an error nothing else handled with a JSON 500, and log it, traceback and all, once.

    Starlette's last resort answers in plain text and re-raises, for the
    server to log the error again; here the client gets the usual error
    body, naming only the exception's type
    (:func:`~turnkit_services.chat.http_errors.internal_error`), and the
    agent's log the rest. A client that left in the middle of its request is
    nobody's error: there is no one to answer.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except ClientDisconnect:
            self.logger.debug("HTTP channel: the client of %s %s left", scope["method"], scope["path"])
        except Exception as exc:
            self.logger.error("HTTP channel: %s %s failed", scope["method"], scope["path"], exc_info=exc)
            if started:  # the answer is under way: only closing the connection is left, which the server does
                raise
            await internal_error(exc)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
