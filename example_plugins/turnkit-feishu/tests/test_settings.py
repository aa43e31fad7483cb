"""What stops the start: a missing secret, no way to verify requests, a wrong setting — each named clearly."""

from __future__ import annotations

from typing import Any

import pytest
from feishu_emulator import APP_ID
from turnkit.testing_served import ServedAgent
from turnkit_feishu import FeishuSettings


def start_failure(served: ServedAgent, **table: Any) -> str:
    served.configure(service={"chat": {"channels": ["http", "feishu"], "channel": {"feishu": table}}})
    with pytest.raises(RuntimeError, match="exited with") as failed:
        served.start()
    served.wait_for(lambda: "Error:" in served.output, timeout=5)  # stderr is read by a thread
    return f"{failed.value}\n{served.output}"


def test_a_missing_app_secret_stops_the_start_naming_the_setting_and_the_variable(
    turnkit_served: ServedAgent,
) -> None:
    turnkit_served.env["FEISHU_APP_SECRET"] = ""

    output = start_failure(turnkit_served, app_id=APP_ID, verification_token="v-token-1")

    assert "exited with 0" not in output
    assert (
        "[service.chat.channel.feishu]: no app secret: set app_secret, or the environment variable"
        " FEISHU_APP_SECRET" in output
    )


def test_without_an_encrypt_key_or_a_verification_token_the_channel_does_not_start(
    turnkit_served: ServedAgent,
) -> None:
    turnkit_served.env["FEISHU_ENCRYPT_KEY"] = ""

    output = start_failure(turnkit_served, app_id=APP_ID, app_secret="secret-in-the-table")

    assert "[service.chat.channel.feishu]: no way to tell Feishu's requests from forged ones" in output
    assert "encrypt_key (or the environment variable FEISHU_ENCRYPT_KEY) or verification_token" in output


def test_a_wrong_setting_stops_the_start_with_the_table_named(turnkit_served: ServedAgent) -> None:
    output = start_failure(turnkit_served, app_id=APP_ID, max_length=200_000, encrypt_key="k")

    assert "[service.chat.channel.feishu]" in output
    assert "max_length" in output


def test_the_secrets_come_from_the_table_first_then_the_environment() -> None:
    settings = FeishuSettings(app_id=APP_ID, app_secret_env="MY_SECRET", encrypt_key_env="MY_KEY")
    env = {"MY_SECRET": "from-env", "MY_KEY": "key-from-env"}

    from_env = settings.secrets(env)
    from_table = FeishuSettings(app_id=APP_ID, app_secret="from-table", encrypt_key="k").secrets(env)

    assert (from_env.app_secret, from_env.encrypt_key, from_env.verification_token) == (
        "from-env",
        "key-from-env",
        None,
    )
    assert (from_table.app_secret, from_table.encrypt_key) == ("from-table", "k")
