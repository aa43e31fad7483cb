"""Replying to a message through the open platform: the token, the chat's rate, and bounded retries.

One reply part is one ``POST /open-apis/im/v1/messages/{message_id}/reply``
with the tenant access token. Its ``uuid`` is the part's idempotency key:
Feishu sends at most one message per uuid within an hour, so a part sent
again (a retry here after a lost answer, or the inbox's retry after a crash)
is not shown twice.

A call the platform could answer later is tried again here a few times:
rate limited (HTTP 429, or code 99991400 under HTTP 400 from older
gateways), a server error (5xx) or a network failure. The wait is the
``x-ogw-ratelimit-reset`` header's seconds when the platform names one,
else an exponential backoff. A token the platform calls invalid is bought
anew once and the call repeated. Anything else, or the retries used up,
raises: ``deliver`` fails and the inbox tries the reply again later, with
the same uuids.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from .access_token import TenantToken
from .errors import FeishuError
from .ratelimit import ChatRateLimiter

REPLY_PATH = "/open-apis/im/v1/messages/{message_id}/reply"
#: Codes of a tenant access token the platform does not take (invalid, expired, malformed).
INVALID_TOKEN = frozenset({99991661, 99991663, 99991668})
#: The code of a call refused by the platform's rate limits.
RATE_LIMITED = 99991400
RESET_HEADER = "x-ogw-ratelimit-reset"
#: Retries of one call, and their backoff (seconds, doubled each time, capped).
RETRIES = 4
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0
#: A rate limit asking for a longer wait ends the retries at once (the inbox tries again later).
MAX_WAIT = 30.0
#: Seconds an open platform call may take.
TIMEOUT = 30.0


class FeishuApi:
    """The calls the channel makes to the open platform at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        logger: logging.Logger,
        limiter: ChatRateLimiter | None = None,
    ) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=TIMEOUT)
        self.token = TenantToken(self.client, app_id, app_secret)
        self.limiter = limiter or ChatRateLimiter()
        self.logger = logger

    async def reply(self, message_id: str, chat_id: str, text: str, *, uuid: str, in_thread: bool) -> None:
        """Send ``text`` as a reply to ``message_id`` (in its thread if ``in_thread``); raises if not sent."""
        body = {
            "msg_type": "text",
            "content": json.dumps({"text": text}, ensure_ascii=False),
            "uuid": uuid,
            "reply_in_thread": in_thread,
        }
        path = REPLY_PATH.format(message_id=quote(message_id, safe=""))
        refreshed = False
        attempt = 0
        while True:
            token = await self.token.get()
            wait: float | None = None
            try:
                async with self.limiter.slot(chat_id):
                    response = await self.client.post(
                        path, json=body, headers={"Authorization": f"Bearer {token}"}
                    )
            except httpx.TransportError as exc:
                error: Exception = exc
            else:
                code, msg = _outcome(response)
                if response.status_code == 200 and code == 0:
                    return
                error = FeishuError("reply", response.status_code, code, msg)
                if code in INVALID_TOKEN and not refreshed:
                    self.token.invalidate(token)
                    refreshed = True
                    continue
                if not (response.status_code == 429 or code == RATE_LIMITED or response.status_code >= 500):
                    raise error
                wait = _asked_wait(response)
            delay = wait if wait is not None else min(FIRST_BACKOFF * 2**attempt, MAX_BACKOFF)
            if attempt == RETRIES or delay > MAX_WAIT:
                raise error
            self.logger.warning(
                "feishu channel: reply to %s failed (%s); again in %gs",
                message_id,
                str(error) or type(error).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


def _outcome(response: httpx.Response) -> tuple[int | None, str]:
    """The answer's ``code`` and ``msg`` (``None`` and the body's start if not the platform's JSON)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), int):
        return body["code"], str(body.get("msg", ""))
    return None, response.text[:200]


def _asked_wait(response: httpx.Response) -> float | None:
    """The seconds ``x-ogw-ratelimit-reset`` asks to wait, if the platform sent it."""
    try:
        return max(0.0, float(response.headers[RESET_HEADER]))
    except (KeyError, ValueError):
        return None
