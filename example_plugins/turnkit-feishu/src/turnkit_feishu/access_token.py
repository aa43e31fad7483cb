"""The tenant access token replies are sent with, bought with the app secret and kept until it is old.

A self-built app gets its token from
``POST /open-apis/auth/v3/tenant_access_token/internal`` with its app id
and secret; the answer says how many seconds it lasts (``expire``, two
hours at most). :class:`TenantToken` keeps it in memory and buys a new one
when less than five minutes or a tenth of its life is left (whichever is
less, so that a short-lived token is not bought anew for every send).
Feishu hands out a new token once less than half an hour is left, and the
old one stays valid until it expires, so a refresh never breaks a send in
flight. A token the platform refuses anyway (revoked, or the clock off) is
dropped with :meth:`TenantToken.invalidate`, and the next send buys another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from .errors import FeishuError

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
#: The most of a token's life left unused: refreshed when less than this (or a tenth of it) is left.
REFRESH_MARGIN = 300.0


class TenantToken:
    """The app's current tenant access token (one per process: replies from every chat share it)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        app_id: str,
        app_secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.app_id = app_id
        self.app_secret = app_secret
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A token valid for a while yet, bought now if the one kept is (nearly) expired."""
        async with self._lock:  # one purchase at a time: the chats waiting for it share it
            if self._token is None or self.clock() >= self._refresh_at:
                await self._buy()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token``, which the platform refused (unless another has replaced it meanwhile)."""
        if self._token == token:
            self._token = None

    async def _buy(self) -> None:
        started = self.clock()
        response = await self.client.post(
            TOKEN_PATH, json={"app_id": self.app_id, "app_secret": self.app_secret}
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("code") != 0:
            code = body.get("code") if isinstance(body, dict) else None
            msg = str(body.get("msg", "")) if isinstance(body, dict) else response.text[:200]
            raise FeishuError("tenant_access_token", response.status_code, code, msg)
        token, expire = body.get("tenant_access_token"), body.get("expire")
        if not isinstance(token, str) or not token or not isinstance(expire, int | float) or expire <= 0:
            raise FeishuError(
                "tenant_access_token", response.status_code, 0, "no tenant_access_token or expire"
            )
        self._token = token
        self._refresh_at = started + expire - min(REFRESH_MARGIN, expire / 10)
