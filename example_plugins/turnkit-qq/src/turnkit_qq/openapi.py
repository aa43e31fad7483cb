"""The OpenAPI calls of the channel: authorised with the app access token, retried when it is worth it.

A call refused with 401 gets a new token and is tried once more (the
token may have been renewed or revoked on the platform's side). One refused
with 429 or a 5xx, or that got no answer at all (the connection failed, or
no answer came within ``CALL_TIMEOUT``), is tried again up to ``RETRIES``
times, waiting ``BACKOFF`` seconds, doubled each time, or what the
platform's ``Retry-After`` asks (at most ``MAX_WAIT``). Then the error is
raised, and the inbox answers the message again later. Trying a reply again
is safe even when the first try did arrive unseen: the platform refuses a
second reply with the same ``msg_id`` and ``msg_seq`` (see :mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from .errors import QQApiError
from .tokens import AccessTokens

#: Seconds to wait for an answer; the platform advises at least 5 for message sends.
CALL_TIMEOUT = 10.0
#: Further tries of a call refused with 429 or 5xx (or not answered), and the first wait between them.
RETRIES = 3
BACKOFF = 0.5
#: The longest wait between two tries, whatever ``Retry-After`` asks.
MAX_WAIT = 10.0


class OpenApi:
    """POSTs to the platform's OpenAPI under ``api_base``; see the module docstring."""

    def __init__(
        self, client: httpx.AsyncClient, api_base: str, tokens: AccessTokens, logger: logging.Logger
    ) -> None:
        self._client = client
        self._base = api_base.rstrip("/")
        self._tokens = tokens
        self._log = logger

    async def post(self, path: str, body: dict[str, Any]) -> None:
        """POST ``body`` as JSON to ``path``; raises :class:`QQApiError` (or httpx's error) if it fails."""
        renewed = False
        tries = 0
        while True:
            token = await self._tokens.get()
            wait: float | None = None
            try:
                response = await self._client.post(
                    self._base + path,
                    json=body,
                    headers={"Authorization": f"QQBot {token}"},
                    timeout=CALL_TIMEOUT,
                )
            except httpx.TransportError as exc:
                failure: Exception = exc
            else:
                if response.status_code == 401 and not renewed:
                    self._tokens.drop(token)
                    renewed = True
                    continue
                if response.is_success:
                    return
                failure = error = QQApiError.of(f"POST {path}", response)
                if not error.transient:
                    raise error
                wait = _asked_wait(response)
            if tries == RETRIES:
                raise failure
            tries += 1
            delay = min(MAX_WAIT, wait if wait is not None else BACKOFF * 2 ** (tries - 1))
            self._log.info("qq channel: POST %s failed (%s); again in %gs", path, failure, delay)
            await asyncio.sleep(delay)


def _asked_wait(response: httpx.Response) -> float | None:
    """The seconds of a ``Retry-After`` header, if the platform sent one."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
