"""The native HTTP API under ``/api``: talk in a chat, start a new session, read sessions.

A *chat* is a conversation key the client chooses (a user id, a ticket
number …), like a Telegram chat id: the chat service keeps one session per
chat (the ``chat_session`` point, which a plugin may answer otherwise) and
``POST /api/chats/{chat}/sessions`` starts a fresh one. Sessions are read,
and can be continued directly, by their ids; ``PUT`` and ``DELETE`` on
``/api/sessions/{id}/instructions`` set and clear a session's own
instructions.

A request that runs a turn may carry an ``Idempotency-Key`` header: a
client that resends it (a timeout, a dropped connection, another worker
behind the load balancer) gets the first request's turn, never a second
one. The retry must reach the same session, which it does by naming the
same chat or session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from turnkit_hookspecs import ChannelMessage, Message, Principal, unstructure

from .channel import ChatOutcome
from .http_errors import ApiError, chat_failure, error_body
from .http_requests import MAX_NAME, chat_key, idempotency_key, plain_text, read_payload, session_id
from .http_streaming import KEEPALIVE, TurnEvent, first_in, sse, sse_response, turn_events

if TYPE_CHECKING:
    from .http import HttpChannel

#: The principal id of a message whose request names no ``user``.
ANONYMOUS = "anonymous"


@attrs.frozen
class PutInstructions:
    """The body of ``PUT /api/sessions/{session_id}/instructions`` (``""``: no instructions at all)."""

    instructions: str


@attrs.frozen
class PostMessage:
    """The body of ``POST /api/chats/{chat}/messages``."""

    text: str
    user: str | None = None
    name: str | None = None
    stream: bool = False


class ChatApi:
    """The ``/api`` routes of one HTTP channel."""

    def __init__(self, channel: HttpChannel) -> None:
        self.channel = channel
        #: The agent's sessions, which the read routes (and the chat binding) use directly.
        self.sessions = channel.chat.context.session

    def routes(self) -> list[Route]:
        """The routes, for the channel's Starlette app."""
        return [
            Route("/api/chats/{chat}/messages", self.post_message, methods=["POST"]),
            Route("/api/chats/{chat}/sessions", self.new_session, methods=["POST"]),
            Route("/api/sessions", self.list_sessions, methods=["GET"]),
            Route("/api/sessions/{session_id}", self.read_session, methods=["GET"]),
            Route("/api/sessions/{session_id}/messages", self.post_to_session, methods=["POST"]),
            Route(
                "/api/sessions/{session_id}/instructions",
                self.set_instructions,
                methods=["PUT", "DELETE"],
            ),
        ]

    async def post_message(self, request: Request) -> Response:
        """Run a user message as a turn of the chat's session; the reply as JSON, or as SSE."""
        chat = chat_key(request)
        key = idempotency_key(request)
        return await self._post(chat, await _read_message(request), key)

    async def post_to_session(self, request: Request) -> Response:
        """Run a user message as a turn of a given active session, through its own chat ``session:<id>``.

        The chat is bound to the session first, so that the chat service's
        ``chat_session`` answers with it (a plugin answering that point
        first still has the last word).
        """
        target = session_id(request)
        key = idempotency_key(request)
        info = await self.sessions.get(target)
        if info is None:
            raise ApiError(404, f"no session {target!r}")
        if info.status != "active":
            raise ApiError(409, f"session {target!r} is {info.status}: start a new one to go on")
        body = await _read_message(request)
        chat = f"session:{target}"
        await self.channel.chat.bind(self.channel.name, chat, target)
        return await self._post(chat, body, key)

    async def _post(self, chat: str, body: PostMessage, key: str | None) -> Response:
        inbound = ChannelMessage(
            channel=self.channel.name,
            chat_id=chat,
            principal=Principal(self.channel.name, body.user or ANONYMOUS, body.name),
            message=Message.of("user", body.text),
            metadata={"api": "turnkit"},
        )
        if body.stream:
            events = turn_events(self.channel, inbound, key)
            if key is not None:
                events = await first_in(events)
            return sse_response(self._events(chat, events))
        return JSONResponse(outcome_json(chat, await self.channel.turn(inbound, key)))

    async def _events(self, chat: str, events: AsyncIterator[TurnEvent]) -> AsyncIterator[str]:
        """The turn's events as SSE: ``chunk``s, then ``done`` (or ``error``).

        A completed turn that streamed nothing to this request (a retry's
        turn, a turn another worker ran, a model that does not stream) sends
        its reply as one chunk, so that the chunks joined are the reply on
        every path.
        """
        streamed = False
        try:
            async for item in events:
                if item is None:
                    yield KEEPALIVE
                elif isinstance(item, ChatOutcome):
                    if not streamed and item.status == "completed" and item.reply.text:
                        yield sse({"text": item.reply.text}, "chunk")
                    yield sse(outcome_json(chat, item), "done")
                else:
                    streamed = True
                    yield sse({"text": item}, "chunk")
        except Exception as exc:
            error = chat_failure(exc)
            yield sse(error_body(error.status, error.message), "error")

    async def new_session(self, request: Request) -> Response:
        """Start a fresh session for the chat (its next messages go there)."""
        chat = chat_key(request)
        fresh = await self.channel.chat.new_session(self.channel.name, chat)
        return JSONResponse({"chat": chat, "session_id": fresh}, status_code=201)

    async def list_sessions(self, request: Request) -> Response:
        """The agent's sessions, most recently active first (``?kind=chat`` for one kind)."""
        kind = request.query_params.get("kind")
        if kind is not None:
            plain_text(kind, "kind", MAX_NAME)
        sessions = await self.sessions.list_sessions(kind)
        return JSONResponse({"sessions": [unstructure(s) for s in sessions]})

    async def set_instructions(self, request: Request) -> Response:
        """Give a session instructions of its own (``PUT``), or send it back to the agent's (``DELETE``).

        Its next turn uses them, whichever worker runs it; a turn already
        running keeps the ones it started with.
        """
        wanted = session_id(request)
        access = self.sessions
        if await access.get(wanted) is None:
            raise ApiError(404, f"no session {wanted!r}")
        text = None
        if request.method == "PUT":
            text = (await read_payload(request, PutInstructions)).instructions
        try:
            await access.set_instructions(wanted, text)
        except ValueError as exc:  # text the store cannot keep (too long)
            raise ApiError(400, f"{exc} @ $.instructions") from exc
        return JSONResponse({"session_id": wanted, "instructions": text})

    async def read_session(self, request: Request) -> Response:
        """A session, every message of its history, and the messages queued behind its running turn.

        Queued messages are not in the history until their turn starts;
        without them a client polling a busy session would not see what it
        sent. They are read before the history, so that a turn starting in
        between shows its message twice (queued, and in the history) rather
        than nowhere.
        """
        wanted = session_id(request)
        access = self.sessions
        info = await access.get(wanted)
        if info is None:
            raise ApiError(404, f"no session {wanted!r}")
        queued = await access.queued(wanted)
        messages = await access.history(wanted)
        return JSONResponse(
            {
                "session": unstructure(info),
                "instructions": await access.instructions(wanted),
                "messages": [unstructure(m) for m in messages],
                "queued": [
                    {
                        "turn_id": turn.turn_id,
                        "number": turn.number,
                        "status": turn.status,
                        "role": message.role,
                        "text": message.text,
                    }
                    for turn, message in queued
                ],
            }
        )


def outcome_json(chat: str, outcome: ChatOutcome) -> dict[str, Any]:
    """What a client learns of a turn: where it ran, how it ended, and the reply to show."""
    turn = outcome.result.turn
    return {
        "chat": chat,
        "session_id": outcome.session_id,
        "turn_id": turn.turn_id,
        "number": turn.number,
        "status": turn.status,
        "reply": outcome.reply.text,
    }


async def _read_message(request: Request) -> PostMessage:
    body = await read_payload(request, PostMessage)
    if not body.text.strip():
        raise ApiError(400, "empty message: 'text' holds no text @ $.text")
    return body
