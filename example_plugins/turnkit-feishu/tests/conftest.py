"""Fixtures: the platform emulator, and ``turnkit serve`` with the channel pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from feishu_emulator import APP_ID, APP_SECRET, FeishuEmulator, Pusher, running_emulator
from turnkit.testing_served import ServedAgent

EVENTS = "/channels/feishu/events"
ENCRYPT_KEY = "encrypt-key-of-the-test-app"
VERIFICATION_TOKEN = "verification-token-of-the-test-app"

Serve = Callable[..., Pusher]


def logged(served: ServedAgent, text: str) -> None:
    """Wait until the agent has logged ``text`` (its stderr is read by a thread, a moment behind)."""
    served.wait_for(lambda: text in served.output, timeout=5)


@pytest.fixture
def emulator() -> Iterator[FeishuEmulator]:
    """Feishu's open platform on 127.0.0.1, answering normally until told otherwise."""
    yield from running_emulator()


@pytest.fixture
def serve(turnkit_served: ServedAgent, emulator: FeishuEmulator) -> Serve:
    """Start the agent with the feishu channel; returns the pusher posting events to it.

    By default the app has an Encrypt Key (from ``FEISHU_ENCRYPT_KEY``) and
    no Verification Token; ``encrypt=False`` leaves the key out, ``token``
    sets ``verification_token``, other keywords are channel settings
    (``None`` leaves one out). The app secret comes from ``FEISHU_APP_SECRET``.
    """

    def serve(*, encrypt: bool = True, token: str | None = None, **settings: Any) -> Pusher:
        turnkit_served.env["FEISHU_APP_SECRET"] = APP_SECRET
        turnkit_served.env["FEISHU_ENCRYPT_KEY"] = ENCRYPT_KEY if encrypt else ""
        table: dict[str, Any] = {"app_id": APP_ID, "base_url": emulator.url, "lease_ttl": 1.0, **settings}
        if token is not None:
            table["verification_token"] = token
        turnkit_served.configure(
            service={
                "chat": {
                    "channels": ["http", "feishu"],
                    "channel": {"feishu": {k: v for k, v in table.items() if v is not None}},
                }
            }
        )
        turnkit_served.start()
        return Pusher(
            emulator,
            turnkit_served.port,
            str(table.get("path") or EVENTS),
            encrypt_key=ENCRYPT_KEY if encrypt else None,
            verification_token=token or "",
        )

    return serve
