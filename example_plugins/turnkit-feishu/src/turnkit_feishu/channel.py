"""The Feishu channel: events in on the agent's HTTP server, replies out through the open platform.

How a message travels, and why in this order:

1. Feishu posts the event to the channel's route (``path``). The request
   proves it is Feishu's (:mod:`.verify`) before anything is read; a
   refused one is answered 401 and logged, and never becomes a turn.
2. The console's URL check (``url_verification``) is answered its
   challenge at once. A user's text or rich-text message becomes a
   :class:`~turnkit_hookspecs.ChannelMessage` of the chat (and thread),
   from the sender's open id, and is handed to the inbox under the
   event's id; the inbox stores it durably (or finds it a duplicate: a
   re-send) and only then is Feishu answered ``200 {}``. Feishu re-sends
   what is not answered within a few seconds, so the turn itself is not
   waited for. Other events and message types are answered ``200`` and
   dropped.
3. The inbox answers the chat's messages one after another, in the
   background, in any worker on the store: a turn runs once per event id,
   and :meth:`FeishuChannel.deliver` replies to the message, part by part,
   each part with a uuid made from the event id and the part's index.
   Feishu sends one message per uuid, so a reply delivered again (after a
   crash between sending and recording it) shows once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from turnkit_hookspecs import ChannelMessage, Message, Principal
from turnkit_services.chat import Channel, ChatPath, Inbox
from turnkit_services.chat.http_errors import ApiError

from .api import FeishuApi
from .errors import Malformed, Refused
from .events import MESSAGE_RECEIVED, event_type, received_message
from .settings import DEFAULT_MAX_LENGTH, FeishuSettings
from .verify import URL_VERIFICATION, RequestVerifier


class FeishuChannel(Channel):
    """A Feishu (or Lark) bot answering its users; see the module docstring for the guarantees."""

    name = "feishu"
    settings_class = FeishuSettings
    max_length = DEFAULT_MAX_LENGTH
    #: Replies only: sending into a chat unasked (``chat.deliver``) is left out.
    can_push = False
    settings: FeishuSettings

    def __init__(self, chat: ChatPath, settings: FeishuSettings) -> None:
        super().__init__(chat, settings)
        secrets = settings.secrets(chat.context.env)
        self.max_length = settings.max_length  # type: ignore[misc]
        self.verifier = RequestVerifier(secrets, settings.replay_window)
        self.api = FeishuApi(settings.base_url, settings.app_id, secrets.app_secret, chat.context.logger)
        self.inbox = Inbox(chat, self, ttl=settings.lease_ttl)

    def routes(self) -> Sequence[BaseRoute]:
        """The event subscription's request URL."""
        return [Route(self.settings.path, self.receive, methods=["POST"])]

    async def run(self) -> None:
        """Answer the accepted events (and those a killed worker left) until cancelled."""
        try:
            await self.inbox.run()
        finally:
            await self.api.aclose()

    async def receive(self, request: Request) -> JSONResponse:
        """One request Feishu posted: the URL check, or an event to accept (see the module docstring)."""
        logger = self.chat.context.logger
        try:
            payload = self.verifier.open(request.headers, await request.body())
        except Refused as exc:
            peer = request.client.host if request.client else "?"
            logger.warning("feishu channel: refused a request from %s: %s", peer, exc)
            raise ApiError(401, f"not a request from Feishu: {exc}") from exc
        except Malformed as exc:
            raise ApiError(400, f"not a Feishu event: {exc}") from exc
        if payload.get("type") == URL_VERIFICATION:
            return JSONResponse({"challenge": payload.get("challenge")})
        kind = event_type(payload)
        if kind != MESSAGE_RECEIVED:
            logger.debug("feishu channel: event %s ignored", kind or "of another schema")
            return JSONResponse({})
        try:
            message = received_message(payload)
        except Malformed as exc:
            raise ApiError(400, f"not a Feishu event: {exc}") from exc
        if message.text is None or message.sender_type != "user":
            logger.debug(
                "feishu channel: %s message %s from a %s ignored",
                message.message_type,
                message.message_id,
                message.sender_type or "sender",
            )
            return JSONResponse({})
        inbound = ChannelMessage(
            self.name,
            message.chat_id,
            Principal(self.name, message.sender_open_id),
            Message.of("user", message.text),
            thread_id=message.thread_id,
            metadata={
                "event_id": message.event_id,
                "message_id": message.message_id,
                "chat_type": message.chat_type,
            },
        )
        if not await self.inbox.accept(message.event_id, inbound):
            logger.debug("feishu channel: event %s sent again, dropped", message.event_id)
        return JSONResponse({})

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Reply to the inbound message with ``parts``, in order; raises (the inbox retries) if one fails."""
        event_id, message_id = inbound.metadata["event_id"], inbound.metadata["message_id"]
        for index, part in enumerate(parts):
            if not part.strip():  # an empty reply: nothing to show, not worth a send
                continue
            await self.api.reply(
                message_id,
                inbound.chat_id,
                part,
                uuid=reply_uuid(event_id, index),
                in_thread=inbound.thread_id is not None,
            )


def reply_uuid(event_id: str, index: int) -> str:
    """The uuid of part ``index`` of the reply to ``event_id``: the same on every try, at most 50 characters.

    >>> reply_uuid("5e3702a84e847582be8db7fb73283c02", 0) == reply_uuid("5e3702a84e847582be8db7fb73283c02", 0)
    True
    >>> len(reply_uuid("x" * 200, 123456))
    47
    """
    return f"{hashlib.sha256(event_id.encode('utf-8')).hexdigest()[:40]}-{index}"
