"""The native HTTP API under ``/api``: talk in a chat, start a new session, read sessions.

A *chat* is a conversation key the client chooses (a user id, a ticket
number …), like a Telegram chat id: the chat service keeps one session per
chat (the ``chat_session`` point, which a plugin may answer otherwise) and
``POST /api/chats/{chat}/sessions`` starts a fresh one. Sessions are read,
and can be continued directly, by their ids.
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
from .http_errors import ApiError, error_body, failure_message
from .http_requests import read_payload
from .http_streaming import KEEPALIVE, sse, sse_response, turn_events

if TYPE_CHECKING:
    from .http import HttpChannel

#: The principal id of a message whose request names no ``user``.
ANONYMOUS = "anonymous"
#: The longest chat key accepted in a path.
MAX_CHAT_KEY = 200


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

    def routes(self) -> list[Route]:
        """The routes, for the channel's Starlette app."""
        return [
            Route("/api/chats/{chat}/messages", self.post_message, methods=["POST"]),
            Route("/api/chats/{chat}/sessions", self.new_session, methods=["POST"]),
            Route("/api/sessions", self.list_sessions, methods=["GET"]),
            Route("/api/sessions/{session_id}", self.read_session, methods=["GET"]),
            Route("/api/sessions/{session_id}/messages", self.post_to_session, methods=["POST"]),
        ]

    async def post_message(self, request: Request) -> Response:
        """Run a user message as a turn of the chat's session; the reply as JSON, or as SSE."""
        chat = _chat_key(request)
        return await self._post(chat, await _read_message(request))

    async def post_to_session(self, request: Request) -> Response:
        """Run a user message as a turn of a given active session, through its own chat ``session:<id>``.

        The chat is bound to the session first, so that the chat service's
        ``chat_session`` answers with it (a plugin answering that point
        first still has the last word).
        """
        session_id = request.path_params["session_id"]
        info = await self.channel.chat.context.session.get(session_id)
        if info is None:
            raise ApiError(404, f"no session {session_id!r}")
        if info.status != "active":
            raise ApiError(409, f"session {session_id!r} is {info.status}: start a new one to go on")
        body = await _read_message(request)
        chat = f"session:{session_id}"
        await self.channel.chat.bind(self.channel.name, chat, session_id)
        return await self._post(chat, body)

    async def _post(self, chat: str, body: PostMessage) -> Response:
        inbound = ChannelMessage(
            channel=self.channel.name,
            chat_id=chat,
            principal=Principal(self.channel.name, body.user or ANONYMOUS, body.name),
            message=Message.of("user", body.text),
            metadata={"api": "turnkit"},
        )
        if body.stream:
            return sse_response(self._events(chat, inbound))
        return JSONResponse(outcome_json(chat, await self.channel.turn(inbound)))

    async def _events(self, chat: str, inbound: ChannelMessage) -> AsyncIterator[str]:
        try:
            async for item in turn_events(self.channel, inbound):
                if item is None:
                    yield KEEPALIVE
                elif isinstance(item, ChatOutcome):
                    yield sse(outcome_json(chat, item), "done")
                else:
                    yield sse({"text": item}, "chunk")
        except Exception as exc:
            yield sse(error_body(500, failure_message(exc)), "error")

    async def new_session(self, request: Request) -> Response:
        """Start a fresh session for the chat (its next messages go there)."""
        chat = _chat_key(request)
        session_id = await self.channel.chat.new_session(self.channel.name, chat)
        return JSONResponse({"chat": chat, "session_id": session_id}, status_code=201)

    async def list_sessions(self, request: Request) -> Response:
        """The agent's sessions, most recently active first (``?kind=chat`` for one kind)."""
        kind = request.query_params.get("kind")
        sessions = await self.channel.chat.context.session.list_sessions(kind)
        return JSONResponse({"sessions": [unstructure(s) for s in sessions]})

    async def read_session(self, request: Request) -> Response:
        """A session and every message of its history."""
        session_id = request.path_params["session_id"]
        access = self.channel.chat.context.session
        info = await access.get(session_id)
        if info is None:
            raise ApiError(404, f"no session {session_id!r}")
        messages = await access.history(session_id)
        return JSONResponse({"session": unstructure(info), "messages": [unstructure(m) for m in messages]})


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


def _chat_key(request: Request) -> str:
    chat: str = request.path_params["chat"]
    if len(chat) > MAX_CHAT_KEY:
        raise ApiError(400, f"chat key too long: {len(chat)} characters, at most {MAX_CHAT_KEY}")
    return chat
