"""The app access token every OpenAPI call carries, asked for once and renewed before it expires.

``POST token_url`` with ``{"appId", "clientSecret"}`` answers
``{"access_token", "expires_in"}`` (seconds, as a string); calls then send
``Authorization: QQBot <token>``. The platform hands out a new token only in
the last 60 seconds of the current one (both are valid meanwhile), so the
token is renewed once it is that close to expiring (or half-way, for a
token that lives less than two minutes). A call refused with 401 drops the
token (:meth:`AccessTokens.drop`) and is tried once more with a new one.
The token is kept in memory: each ``turnkit serve`` process asks for its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from .errors import QQApiError

#: Seconds before expiry at which a token is renewed.
RENEW_MARGIN = 60.0


class AccessTokens:
    """The current app access token of one bot; see the module docstring."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        app_id: str,
        secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._url = url
        self._app_id = app_id
        self._secret = secret
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """The token to call with: the cached one, or a new one if it is due for renewal."""
        async with self._lock:  # one request for a token at a time, however many replies wait
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = await self._issue()
                self._renew_at = self._clock() + lifetime - min(RENEW_MARGIN, lifetime / 2)
            return self._token

    def drop(self, token: str) -> None:
        """Forget ``token`` (the platform refused it), unless another call renewed it meanwhile."""
        if self._token == token:
            self._token = None

    async def _issue(self) -> tuple[str, float]:
        response = await self._client.post(
            self._url, json={"appId": self._app_id, "clientSecret": self._secret}
        )
        try:
            answer = response.json()
            token, lifetime = str(answer["access_token"]), float(answer["expires_in"])
        except (ValueError, KeyError, TypeError):  # a refusal, with or without an error code
            raise QQApiError.of("getAppAccessToken", response) from None
        if response.status_code != 200 or not token or lifetime <= 0:
            raise QQApiError("getAppAccessToken", response.status_code, 0, "no usable token in the answer")
        return token, lifetime
