"""What a chat channel is: a small adapter between a transport and the chat main path.

A channel receives messages on its transport (a terminal, HTTP, Telegram),
turns each into a :class:`~turnkit_hookspecs.ChannelMessage` and hands it to
:meth:`ChatPath.handle`, which runs the chat points and the session turn and
calls the channel's :meth:`Channel.deliver` with the reply split to
``max_length``. The chat service owns the channels' lifecycle: it creates
the ones listed in ``[service.chat] channels`` and runs them while the agent
serves.

Channels from other distributions register under the entry-point group
``turnkit.channels`` (``matrix = "turnkit_matrix:MatrixChannel"``); their
settings come from ``[service.chat.channel.<name>]``. A channel that
receives over HTTP (a platform's webhooks) returns its routes from
:meth:`Channel.routes`: they are served by the agent's one HTTP server (the
``http`` channel), outside its bearer token, since the platforms sign their
requests instead. ``docs/channel-guide.md`` is the author's guide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs
from turnkit_hookspecs import ChannelMessage, ChunkListener, ExecutionContext, Message, Storage, TurnResult

from .settings import ChatSettings

if TYPE_CHECKING:  # only channels that serve HTTP import the web framework
    from starlette.routing import BaseRoute

#: The entry-point group of channels contributed by other distributions.
CHANNELS_GROUP = "turnkit.channels"


@attrs.frozen
class ChatOutcome:
    """What became of one channel message: the session, the turn, and the text the user gets.

    ``reply`` is the delivered message: the model's reply after
    ``chat_outbound``, or the polite text for a denied or failed turn.
    """

    session_id: str
    result: TurnResult
    reply: Message

    @property
    def status(self) -> str:
        """The turn's status: completed, denied or failed."""
        return self.result.turn.status


class ChatPath(Protocol):
    """What channels call into: the chat service's main path."""

    @property
    def context(self) -> ExecutionContext:
        """The agent's execution context (sessions, plugins, storage)."""

    async def handle(
        self,
        inbound: ChannelMessage,
        channel: Channel,
        stream: ChunkListener | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> ChatOutcome:
        """Run ``inbound`` through the chat points and a turn, deliver the reply, return the outcome.

        With ``idempotency_key``, a message sent again with the same key
        (a client's retry) is stored once and answered with the first one's turn.
        """

    async def new_session(self, channel: str, chat_id: str, thread_id: str | None = None) -> str:
        """Start a fresh session for this chat (``/new``) and return its id."""

    async def bind(self, channel: str, chat_id: str, session_id: str, thread_id: str | None = None) -> None:
        """Make this chat continue ``session_id``."""

    @property
    def settings(self) -> ChatSettings:
        """The chat service's settings (``denied_reply`` …)."""

    @property
    def storage(self) -> Storage:
        """The chat service's records, where channels keep their state (Telegram's offset)."""


class Channel:
    """Base class of a channel; subclasses set ``name`` and implement :meth:`run`.

    ``settings_class`` (attrs) describes the channel's configuration table;
    the instance gets it structured as ``settings``. ``max_length`` is the
    longest message the transport takes: longer replies are split.
    ``can_push`` is false for a transport that only answers requests (HTTP).
    """

    name: ClassVar[str]
    settings_class: ClassVar[type | None] = None
    max_length: ClassVar[int] = 4096
    #: Whether the channel can send a message nobody asked for (``chat.deliver``).
    can_push: ClassVar[bool] = True

    def __init__(self, chat: ChatPath, settings: Any) -> None:
        self.chat = chat
        self.settings = settings

    async def run(self) -> None:
        """Receive messages until cancelled (or, for the terminal, until its user quits)."""
        raise NotImplementedError

    #: Whether :meth:`routes` are behind the ``http`` channel's bearer token (when one is set).
    routes_need_token: ClassVar[bool] = False

    def routes(self) -> Sequence[BaseRoute]:
        """The HTTP (and WebSocket) routes this channel receives on; none by default.

        They are mounted on the server of the ``http`` channel (which must
        then be running too), behind its request size and time limits and
        with its JSON error shape (raise
        :class:`~turnkit_services.chat.http_errors.ApiError`), but **not**
        behind its bearer token: the platform calling them cannot send it,
        so each route checks the platform's signature itself. A channel
        whose clients are the agent's own (an MCP client) sets
        :attr:`routes_need_token` instead, and its routes take the token
        like the HTTP API. Two channels
        claiming one path stop the start, naming both distributions. Called
        once, before the server starts. A ``WebSocketRoute`` needs a
        WebSocket library for the server (uvicorn): a channel with one
        depends on ``websockets`` itself.
        """
        return ()

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Send the reply's parts to where ``inbound`` came from (default: the caller gets the outcome)."""


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at paragraph, line or word ends if possible.

    Joined back with nothing in between, the parts give ``text`` again minus
    the whitespace at the cuts. An empty text is one empty part, so that an
    empty reply is still delivered.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        for separator in ("\n\n", "\n", " "):
            cut = window.rfind(separator)
            if cut > 0:
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    parts.append(rest)
    return parts
