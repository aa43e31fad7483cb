"""What stops the agent at start: a missing secret, a wrong setting."""

from __future__ import annotations

import pytest
from turnkit.testing_served import ServedAgent


def test_without_a_secret_the_agent_does_not_start(served: ServedAgent) -> None:
    del served.env["QQ_BOT_SECRET"]
    with pytest.raises(
        RuntimeError,
        match=r"\[service.chat.channel.qq\]: no app secret: set app_secret,"
        r" or the environment variable QQ_BOT_SECRET",
    ):
        served.start()


def test_an_unknown_setting_stops_the_start_naming_the_table(served: ServedAgent) -> None:
    served.configure(service={"chat": {"channel": {"qq": {"secret": "x"}}}})
    with pytest.raises(RuntimeError, match=r"\[service.chat.channel.qq\]"):
        served.start()
