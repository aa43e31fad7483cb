"""The ``qq`` channel: a QQ bot receiving the platform's signed webhooks and answering with passive replies.

How a callback travels, and why in this order:

1. The platform POSTs a payload to ``path`` on the agent's HTTP server
   (outside the HTTP API's bearer token, which the platform cannot send).
   The channel checks ``X-Signature-Ed25519`` over ``X-Signature-Timestamp``
   and the raw body with the bot's key (:mod:`.signing`), and refuses the
   request with 401, logged and with no turn, when the signature is
   missing or wrong or the timestamp is further than ``replay_window``
   seconds from now (a captured request played again later).
2. The callback URL check (op 13) is answered with its signature. The
   platform's documentation shows it sent unsigned; the channel checks a
   signature if there is one, and only signs a check that looks like the
   platform's (see :func:`.signing.validation_token_shape`).
3. An event (op 0) that is a message to the bot (:mod:`.events`) is stored
   by the chat service's :class:`~turnkit_services.chat.Inbox`, and only
   then acknowledged with op 12; a message the inbox already has (the
   platform sends an unacknowledged callback again, and may push a message
   twice) is acknowledged and dropped.
   Other events are acknowledged and ignored.
4. The inbox answers it in the background, once, and :meth:`QQChannel.deliver`
   sends the reply's parts as passive replies (:mod:`.replies`). A part
   the platform already has (``msg_seq`` duplicate after a crash or a
   timeout) counts as delivered; one it can no longer take (reply window
   closed, too many replies) is logged as undelivered; other failures are
   raised, and the inbox answers again later with the same turn's reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import httpx
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from turnkit_hookspecs import ChannelMessage
from turnkit_services.chat import Channel, ChatPath, Inbox
from turnkit_services.chat.http_errors import ApiError

from .errors import DUPLICATE_SEQ, FOR_GOOD, QQApiError
from .events import ACK, CHANNEL, DISPATCH, VALIDATION, PayloadError, payload_of, received_of
from .openapi import CALL_TIMEOUT, OpenApi
from .replies import REPLY_LIMIT, ReplyTarget
from .settings import TABLE, QQSettings
from .signing import bot_key, sign_validation, validation_token_shape, verify_callback
from .tokens import AccessTokens


class QQChannel(Channel):
    """Talks to QQ users and groups as a bot, over webhooks; see the module docstring."""

    name = CHANNEL
    settings_class = QQSettings
    #: Replies only answer messages: a QQ bot cannot start a conversation.
    can_push = False
    settings: QQSettings

    def __init__(self, chat: ChatPath, settings: QQSettings) -> None:
        super().__init__(chat, settings)
        secret = settings.app_secret or chat.context.env.get(settings.app_secret_env)
        if not secret:
            raise ValueError(
                f"{TABLE}: no app secret: set app_secret, or the environment variable"
                f" {settings.app_secret_env}"
            )
        self.secret = secret
        self.key = bot_key(secret)
        self.public_key = self.key.public_key()
        self.max_length = settings.max_length  # type: ignore[misc]  # per instance: it is a setting
        self.inbox = Inbox(chat, self, ttl=settings.lease_ttl)
        self.log = chat.context.logger
        self._api: OpenApi | None = None

    # ------------------------------------------------------------------ receiving

    def routes(self) -> Sequence[BaseRoute]:
        """The one route the platform posts its callbacks to."""
        return [Route(self.settings.path, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> JSONResponse:
        """Check a callback, then answer it: the URL check's signature, or op 12 once an event is stored."""
        body = await request.body()
        signed = self._check_signature(request.headers, body)
        try:
            payload = payload_of(body)
        except PayloadError as exc:
            if not signed:
                self._refuse_unsigned()
            raise ApiError(400, str(exc)) from exc
        if payload["op"] == VALIDATION:
            return self._validate(payload, signed)
        if not signed:
            self._refuse_unsigned()
        if payload["op"] == DISPATCH:
            received = received_of(payload)
            if received is not None and not await self.inbox.accept(received.event_id, received.inbound):
                self.log.info("qq channel: message %s was pushed again; dropped", received.event_id)
        return JSONResponse(ACK)

    def _check_signature(self, headers: Headers, body: bytes) -> bool:
        """Whether the request is signed (``False`` if it has no signature); 401 for a bad or stale one."""
        signature = headers.get("x-signature-ed25519")
        timestamp = headers.get("x-signature-timestamp")
        if signature is None and timestamp is None:
            return False
        if not signature or not timestamp or not verify_callback(self.public_key, timestamp, body, signature):
            self.log.warning("qq channel: refused a callback with a wrong signature")
            raise ApiError(401, "wrong X-Signature-Ed25519")
        try:
            age = abs(time.time() - float(timestamp))
        except ValueError:
            age = float("inf")
        if not age <= self.settings.replay_window:
            self.log.warning(
                "qq channel: refused a callback signed at %r, more than replay_window (%gs) from now"
                " (replayed, or this machine's clock is off)",
                timestamp,
                self.settings.replay_window,
            )
            raise ApiError(401, "X-Signature-Timestamp outside the replay window")
        return True

    def _refuse_unsigned(self) -> NoReturn:
        """401 for a callback without a signature: only the platform's URL check may come unsigned."""
        self.log.warning("qq channel: refused an unsigned callback")
        raise ApiError(401, "no X-Signature-Ed25519 / X-Signature-Timestamp")

    def _validate(self, payload: dict[str, Any], signed: bool) -> JSONResponse:
        """Answer the callback URL check: ``plain_token`` and the signature of ``event_ts + plain_token``."""
        d = payload.get("d")
        if not isinstance(d, dict):
            d = {}
        plain_token, event_ts = d.get("plain_token"), d.get("event_ts")
        if isinstance(event_ts, int):
            event_ts = str(event_ts)
        if not isinstance(plain_token, str) or not isinstance(event_ts, str):
            raise ApiError(400, "a callback URL check needs d.plain_token and d.event_ts")
        if not signed and not validation_token_shape(event_ts, plain_token):
            self.log.warning("qq channel: refused an unsigned callback URL check unlike the platform's")
            raise ApiError(401, "an unsigned callback URL check must look like the platform's")
        self.log.info("qq channel: answered the platform's callback URL check")
        return JSONResponse(
            {"plain_token": plain_token, "signature": sign_validation(self.key, event_ts, plain_token)}
        )

    # ------------------------------------------------------------------ answering

    async def run(self) -> None:
        """Answer the accepted messages until the agent stops."""
        # made in a thread: loading the system's CA certificates blocks for a while
        client = await asyncio.to_thread(httpx.AsyncClient, timeout=CALL_TIMEOUT)
        async with client:
            tokens = AccessTokens(client, self.settings.token_url, self.settings.app_id, self.secret)
            self._api = OpenApi(client, self.settings.api_base, tokens, self.log)
            try:
                await self.inbox.run()
            finally:
                self._api = None

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Send the parts as passive replies to ``inbound``; see the module docstring for what is raised."""
        if self._api is None:
            raise RuntimeError("the qq channel is not running")
        target = ReplyTarget.of(inbound)
        texts = [part for part in parts if part.strip()]  # the platform refuses an empty message
        if len(texts) > REPLY_LIMIT:
            self.log.warning(
                "qq channel: the reply to message %s has %d parts, the platform takes %d:"
                " the last %d not delivered",
                target.msg_id,
                len(texts),
                REPLY_LIMIT,
                len(texts) - REPLY_LIMIT,
            )
        for index, text in enumerate(texts[:REPLY_LIMIT]):
            if time.time() > target.deadline:
                self.log.warning(
                    "qq channel: the reply window of message %s has closed: %d part(s) not delivered",
                    target.msg_id,
                    min(len(texts), REPLY_LIMIT) - index,
                )
                return
            try:
                await self._api.post(target.path, target.body(index, text))
            except QQApiError as exc:
                if exc.code == DUPLICATE_SEQ:
                    self.log.info(
                        "qq channel: part %d of the reply to %s was delivered before",
                        index + 1,
                        target.msg_id,
                    )
                    continue
                if exc.code in FOR_GOOD:
                    self.log.warning(
                        "qq channel: the reply to message %s not delivered from part %d on: %s",
                        target.msg_id,
                        index + 1,
                        exc,
                    )
                    return
                raise
