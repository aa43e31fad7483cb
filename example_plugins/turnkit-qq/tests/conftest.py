"""Fixtures of the channel's tests: the platform emulator, and an agent serving the channel against it.

``turnkit_served`` comes with turnkit (its pytest plugin): a real
``turnkit serve`` in a subprocess, on a SQLite store in the test's folder,
whose echo model answers with the inbound text. The channel must be
installed (``pip install -e ".[test]"``) for that agent to find it.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest
from qq_platform import QQPlatform
from turnkit.testing_served import ServedAgent

APP_ID = "102000001"
#: Shorter than 32 bytes, so that the key derivation repeats it.
SECRET = "naOC0ocQE3shWLAfffVLB1rhYPG7"
WEBHOOK = "/channels/qq/webhook"

if "qq" not in {ep.name for ep in entry_points(group="turnkit.channels")}:
    pytest.exit('the qq channel is not installed: pip install -e ".[test]" first', returncode=4)


@pytest.fixture
def platform() -> Iterator[QQPlatform]:
    """The QQ Bot platform, on loopback."""
    emulator = QQPlatform(APP_ID, SECRET)
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def served(turnkit_served: ServedAgent, platform: QQPlatform) -> ServedAgent:
    """An agent serving ``http`` and ``qq``, its bot on ``platform`` (not started yet)."""
    turnkit_served.env["QQ_BOT_SECRET"] = SECRET
    turnkit_served.configure(
        agent={"log_level": "INFO"},  # the channel's retries and re-sends are logged at INFO
        service={
            "chat": {
                "channels": ["http", "qq"],
                "channel": {
                    "qq": {
                        "app_id": APP_ID,
                        "api_base": platform.url,
                        "token_url": f"{platform.url}/app/getAppAccessToken",
                        "lease_ttl": 1.0,
                    }
                },
            }
        },
    )
    platform.callback_url = turnkit_served.url + WEBHOOK
    return turnkit_served
