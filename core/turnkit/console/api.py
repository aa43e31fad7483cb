"""The console's JSON API (``/api/…`` under wherever the console is served).

Reads only, except ``POST /api/sessions/{id}/messages``, which runs a turn
when the console is served by a running agent (``turnkit serve``) and is a
409 saying so from the read-only ``turnkit console``. Every error is JSON
in the HTTP API's shape, ``{"error": {"type", "message"}}``: an unknown id
is a 404 naming it, a parameter that does not parse a 400 naming it; no
request makes the server fail.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import StoreError
from ..store import SessionQuery
from .export import render_session, render_turn
from .live import turn_events
from .reader import BadRequest, ConsoleReader, NotFound, decode_cursor

#: The largest page a client may ask for.
MAX_PAGE = 200
#: The longest message the box may send, in characters.
MAX_TEXT = 100_000
#: Error types by status, as the HTTP API names them.
_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    409: "conflict_error",
    415: "invalid_request_error",
}


class Sender(Protocol):
    """Runs one turn with ``text`` in an existing session and returns the turn's JSON and reply."""

    async def __call__(self, session_id: str, text: str) -> Mapping[str, Any]: ...


def error(status: int, message: str) -> JSONResponse:
    """An error response in the HTTP API's shape."""
    kind = _TYPES.get(status, "invalid_request_error")
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


Endpoint = Callable[[Request], Awaitable[Response]]


def _answering(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with the console's errors as their responses (404, 400)."""

    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except NotFound as exc:
            return error(404, str(exc))
        except BadRequest as exc:
            return error(400, str(exc))

    return answer


class ConsoleApi:
    """The routes of the API over one reader; ``sender`` is set when an agent serves the console."""

    def __init__(
        self,
        reader: ConsoleReader,
        plugins: Callable[[], Mapping[str, Any]],
        *,
        sender: Sender | None = None,
        stopping: asyncio.Event | None = None,
        agent_id: str | None = None,
    ) -> None:
        self.reader = reader
        self.plugins = plugins
        self.sender = sender
        self.stopping = stopping
        self.agent_id = agent_id

    def routes(self) -> list[Route]:
        """The API's routes, relative to the console's root."""
        endpoints: list[tuple[str, Endpoint, list[str]]] = [
            ("/api/info", self.info, ["GET"]),
            ("/api/sessions", self.sessions, ["GET"]),
            ("/api/sessions/{session_id}", self.session, ["GET"]),
            ("/api/sessions/{session_id}/export.html", self.session_html, ["GET"]),
            ("/api/sessions/{session_id}/messages", self.send, ["POST"]),
            ("/api/turns/{turn_id}", self.turn, ["GET"]),
            ("/api/turns/{turn_id}/export.html", self.turn_html, ["GET"]),
            ("/api/audit", self.audit, ["GET"]),
            ("/api/plugins", self.plugin_list, ["GET"]),
            ("/api/live", self.live, ["GET"]),
            ("/api/{rest:path}", self.unknown, ["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
        return [Route(path, _answering(endpoint), methods=methods) for path, endpoint, methods in endpoints]

    async def info(self, request: Request) -> Response:
        """What the page needs to know first: whether it may send, and the server's clock."""
        return JSONResponse(
            {
                "read_only": self.sender is None,
                "agent_id": self.agent_id,
                "store": self.reader.store.url,
                "now": time.time(),
            }
        )

    async def sessions(self, request: Request) -> Response:
        params = request.query_params
        after = params.get("after")
        query = SessionQuery(
            text=params.get("q") or None,
            kind=params.get("kind") or None,
            status=params.get("status") or None,
            agent_id=params.get("agent") or None,
            channel=params.get("channel") or None,
            after=None if not after else decode_cursor(after),
            limit=_number(params.get("limit"), "limit", 50, MAX_PAGE),
        )
        return JSONResponse(await self.reader.sessions(query))

    async def session(self, request: Request) -> Response:
        return JSONResponse(await self._session(request))

    async def session_html(self, request: Request) -> Response:
        document = await self._session(request)
        return _download(render_session(document), f"session-{document['session']['session_id']}.html")

    async def _session(self, request: Request) -> dict[str, Any]:
        session_id = request.path_params["session_id"]
        try:
            return await self.reader.session(session_id)
        except StoreError as exc:  # removed between two reads
            raise NotFound(str(exc)) from exc

    async def turn(self, request: Request) -> Response:
        return JSONResponse(await self.reader.turn(request.path_params["turn_id"]))

    async def turn_html(self, request: Request) -> Response:
        document = await self.reader.turn(request.path_params["turn_id"])
        return _download(render_turn(document), f"turn-{document['turn']['turn_id']}.html")

    async def audit(self, request: Request) -> Response:
        params = request.query_params
        before = params.get("before")
        page = await self.reader.audit(
            None if not before else _number(before, "before", 0, 2**62),
            _number(params.get("limit"), "limit", 100, MAX_PAGE),
            params.get("plugin") or None,
        )
        return JSONResponse(page)

    async def plugin_list(self, request: Request) -> Response:
        return JSONResponse(dict(self.plugins()))

    async def live(self, request: Request) -> Response:
        since = request.query_params.get("since")
        start = None
        if since:
            try:
                start = float(since)
            except ValueError:
                raise BadRequest(f"since: not a Unix time: {since!r}") from None
            if not math.isfinite(start):
                raise BadRequest(f"since: not a Unix time: {since!r}")
        events = turn_events(self.reader, start, self.stopping)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def send(self, request: Request) -> Response:
        if self.sender is None:
            return error(
                409,
                "this console is read-only (turnkit console reads the store); to send, open the console"
                " of a running agent: turnkit serve, at /console/ on its HTTP channel",
            )
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(415, "send the message as Content-Type: application/json")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error(400, 'the body must be JSON: {"text": "…"}')
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return error(400, 'text: a non-empty string is required ({"text": "…"})')
        if len(text) > MAX_TEXT:
            return error(400, f"text: at most {MAX_TEXT} characters, got {len(text)}")
        session_id = request.path_params["session_id"]
        if await self.reader.store.get_session(session_id) is None:
            raise NotFound(f"no session {session_id!r}")
        return JSONResponse(dict(await self.sender(session_id, text)))

    async def unknown(self, request: Request) -> Response:
        return error(404, f"no such console API: {request.method} {request.url.path}")


def _number(given: str | None, name: str, default: int, most: int) -> int:
    if given is None or given == "":
        return default
    try:
        value = int(given)
    except ValueError:
        raise BadRequest(f"{name}: not a whole number: {given!r}") from None
    if not 1 <= value <= most:
        raise BadRequest(f"{name}: must be between 1 and {most}, got {value}")
    return value


def _download(page: str, name: str) -> HTMLResponse:
    return HTMLResponse(page, headers={"Content-Disposition": f'attachment; filename="{name}"'})
