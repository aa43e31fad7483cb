"""The ``onebot`` channel: a QQ bot behind a OneBot v11 implementation, over its reverse WebSocket.

The implementation (NapCat, LLOneBot, Lagrange …) logs in to QQ and
connects to the agent as a universal reverse-WebSocket client, on
``path`` of the agent's HTTP server: its events arrive on that socket, and
the agent's API calls (``send_private_msg``, ``send_group_msg``) go back
over it. How a message travels, and why in this order:

1. The handshake is checked (:mod:`~turnkit_onebot.handshake`): a wrong or
   missing access token is refused with 401 before the socket opens, and
   so never reaches the agent.
2. A message event the agent answers (:mod:`~turnkit_onebot.events`) is
   stored by the chat service's :class:`~turnkit_services.chat.Inbox`
   under ``<self_id>:<message_id>``; a message id seen before (an
   implementation re-sending after a reconnect) is dropped. OneBot has no
   acknowledgement: the frame arriving is all the implementation knows,
   and it does not send an event again.
3. The inbox answers in the background, one message at a time per
   conversation; the reply, split to ``max_length``, goes over the bot's
   socket in this worker as one API call per part, each waiting for the
   answer with its ``echo``. A refused or unanswered call, or no socket
   for the bot, raises: the inbox tries again with backoff, with the same
   turn's reply, and the parts already sent are not sent again by this
   worker.

The sockets live in the worker the implementation connected to; see the
README on running several workers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket
from turnkit_hookspecs import ChannelMessage
from turnkit_services.chat import Channel, ChatPath, Inbox
from turnkit_services.chat.http_errors import error_response

from .connection import BotConnection, CallFailed, Connections
from .events import CHANNEL, Address, incoming
from .handshake import Refused, admit
from .message import text_message
from .settings import TABLE, OneBotSettings

#: Close code for a socket replaced by the bot's new connection, or closed as the agent stops.
NORMAL_CLOSE = 1000
GOING_AWAY = 1001
#: Close code of a refused handshake where the server cannot answer it with an HTTP status (403 then).
POLICY_VIOLATION = 1008
#: How many replies' progress (parts sent) is remembered while their delivery is retried.
PROGRESS_KEPT = 1024


class OneBotChannel(Channel):
    """Serves the implementations' sockets and answers their bots' messages; see the module docstring."""

    name = CHANNEL
    settings_class = OneBotSettings
    settings: OneBotSettings

    def __init__(self, chat: ChatPath, settings: OneBotSettings) -> None:
        super().__init__(chat, settings)
        self.max_length = settings.max_length  # type: ignore[misc]  # per instance: it is a setting
        self.token = settings.token(chat.context.env)
        self.inbox = Inbox(chat, self, ttl=settings.lease_ttl)
        self.connections = Connections()
        #: Parts of a reply already sent, by event id, while its delivery is retried.
        self._progress: dict[str, int] = {}

    def routes(self) -> Sequence[BaseRoute]:
        """The universal socket the implementations connect to."""
        return [WebSocketRoute(self.settings.path, self.connect)]

    async def run(self) -> None:
        """Answer the accepted messages until the agent stops; then close the bots' sockets."""
        if self.token is None:
            self.chat.context.logger.warning(
                "%s: no access token (set access_token_env, default %s): OneBot implementations"
                " may connect only from this machine",
                TABLE,
                self.settings.access_token_env,
            )
        try:
            await self.inbox.run()
        finally:
            await self.connections.close_all(GOING_AWAY, "the agent is stopping")

    # ------------------------------------------------------------------ the socket

    async def connect(self, websocket: WebSocket) -> None:
        """Check the handshake, then read the bot's frames until its socket closes."""
        peer = websocket.client.host if websocket.client else None
        try:
            self_id = admit(websocket.headers, websocket.query_params, peer, self.token)
        except Refused as refused:
            self.chat.context.logger.warning(
                "onebot channel: refused a connection from %s: %s", peer, refused.reason
            )
            await _refuse(websocket, refused)
            return
        await websocket.accept()
        connection = BotConnection(self_id, websocket)
        previous = await self.connections.add(connection)
        if previous is not None:
            await previous.close(NORMAL_CLOSE, "replaced by a new connection of the same bot")
        self.chat.context.logger.info("onebot channel: bot %s connected from %s", self_id, peer)
        try:
            await self._read(connection)
        finally:
            connection.end("the socket closed")
            await self.connections.remove(connection)
            self.chat.context.logger.info("onebot channel: bot %s disconnected", self_id)

    async def _read(self, connection: BotConnection) -> None:
        """Route each frame: an event to :meth:`_event`, an API answer to its call, anything else nowhere."""
        while True:
            message = await connection.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None and message.get("bytes") is not None:
                data = message["bytes"].decode("utf-8", "replace")
            try:
                frame = json.loads(data) if data is not None else None
            except ValueError:
                frame = None
            if not isinstance(frame, dict):
                continue
            if "post_type" in frame:
                await self._event(connection, frame)
            elif "echo" in frame:
                connection.answered(frame)

    async def _event(self, connection: BotConnection, event: dict[str, Any]) -> None:
        """Store a message to answer; the rest (meta events, notices, requests) is not the agent's."""
        logger = self.chat.context.logger
        reported = event.get("self_id")
        if reported is not None and str(reported) != connection.self_id:
            logger.warning(
                "onebot channel: dropped an event for bot %s on the socket of bot %s",
                reported,
                connection.self_id,
            )
            return
        found = incoming(event, connection.self_id, group_require_at=self.settings.group_require_at)
        if found is None:
            return
        try:
            accepted = await self.inbox.accept(found.event_id, found.inbound)
        except Exception:  # the store failed: OneBot will not send the event again
            logger.error(
                "onebot channel: message %s could not be stored: it is lost", found.event_id, exc_info=True
            )
            return
        if not accepted:
            logger.debug("onebot channel: dropped message %s, received before", found.event_id)

    # ------------------------------------------------------------------ replies

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Send each part over the bot's socket in this worker; raise (to be retried) if one is not sent."""
        address = Address.of(inbound.chat_id)
        timeout = self.settings.call_timeout
        connection = await self.connections.get(address.self_id, timeout)
        if connection is None:
            raise CallFailed(
                f"no connection for bot {address.self_id} in this worker (waited {timeout:g}s):"
                " the reply goes out once the OneBot implementation connects here"
            )
        if address.kind == "group":
            action, field = "send_group_msg", "group_id"
        else:
            action, field = "send_private_msg", "user_id"
        texts = [part for part in parts if part.strip()]  # QQ refuses an empty message
        message_id = inbound.metadata.get("message_id")
        key = f"{address.self_id}:{message_id}" if message_id is not None else None
        start = self._progress.get(key, 0) if key is not None else 0
        for index in range(start, len(texts)):
            # a text segment is never read as CQ codes; auto_escape says the same to any implementation
            params = {field: address.target, "message": text_message(texts[index]), "auto_escape": True}
            await connection.call(action, params, timeout)
            if key is not None:
                self._remember(key, index + 1)
        if key is not None:
            self._progress.pop(key, None)

    def _remember(self, key: str, sent: int) -> None:
        """Keep how many parts of ``key``'s reply were sent; the oldest beyond ``PROGRESS_KEPT`` go."""
        self._progress.pop(key, None)
        self._progress[key] = sent
        while len(self._progress) > PROGRESS_KEPT:
            del self._progress[next(iter(self._progress))]


async def _refuse(websocket: WebSocket, refused: Refused) -> None:
    """Answer a refused handshake with its HTTP status and a JSON error (403 where the server cannot)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(refused.status, refused.reason))
    else:
        await websocket.close(POLICY_VIOLATION)
