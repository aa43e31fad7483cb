"""The secret scrubber: which values are secret, the forms they are found in, and scrubbed log records."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import attrs
import pytest
from turnkit.config import parse_config
from turnkit.secrets import MARK, MIN_LENGTH, Secrets, protect_logs
from turnkit_hookspecs import Deny, Message, TextBlock, ToolCallBlock, ToolOutputBlock

KEY = "sk-live-4f9a2c7e1b"
TOKEN = "123456:AAE-bot-token-value"


def secrets_of(tables: dict[str, object], env: dict[str, str]) -> Secrets:
    return Secrets.of(parse_config(tables), env)


def test_nothing_configured_or_set_is_no_secret_and_changes_nothing() -> None:
    secrets = secrets_of({"secrets": {"env": ["UNSET_KEY"]}}, {"OTHER": KEY})
    assert not secrets
    message = Message.of("user", f"text with {KEY}")
    assert secrets.scrub(message.text) == message.text
    clean, body = secrets.encode(message)
    assert clean is message and KEY in body


def test_the_secrets_table_names_variables_whose_values_are_scrubbed() -> None:
    secrets = secrets_of({"secrets": {"env": ["DEPLOY_KEY"]}}, {"DEPLOY_KEY": KEY, "HOME": "/home/agent"})
    assert secrets.scrub(f"DEPLOY_KEY={KEY}\0HOME=/home/agent") == "DEPLOY_KEY=[secret]\0HOME=/home/agent"


def test_env_settings_and_credential_settings_of_any_table_are_secret() -> None:
    secrets = secrets_of(
        {
            "service": {
                "chat": {"telegram": {"token_env": "BOT_TOKEN"}, "http": {"token": "http-bearer-1"}},
                "shell": {"env": {"API_TOKEN": "tool-token-22"}, "base_env": ["HOME"]},
            },
            "plugin": {"openai": {"api_key_env": "MY_OPENAI"}, "other": {"password": "hunter2hunter2"}},
        },
        {"BOT_TOKEN": TOKEN, "MY_OPENAI": KEY, "HOME": "/home/agent"},
    )
    text = f"{TOKEN} {KEY} http-bearer-1 tool-token-22 hunter2hunter2 /home/agent"
    assert secrets.scrub(text) == " ".join([MARK] * 5 + ["/home/agent"]), "base_env lists names, not secrets"


def test_tables_of_variables_and_credentials_passed_on_by_name_are_secret() -> None:
    # turnkit-mcp's servers: headers from the environment, and variables handed to a server's process.
    servers = {
        "github": {"command": "gh-mcp", "env": ["GITHUB_TOKEN", "GITHUB_HOST"]},
        "docs": {"url": "https://docs.example/mcp", "headers_env": {"Authorization": "DOCS_AUTH"}},
    }
    secrets = secrets_of(
        {"plugin": {"mcp": {"servers": servers}}},
        {"GITHUB_TOKEN": TOKEN, "GITHUB_HOST": "github.example", "DOCS_AUTH": f"Bearer {KEY}"},
    )
    assert secrets.scrub(f"{TOKEN} github.example Bearer {KEY}") == f"{MARK} github.example {MARK}"


def test_structured_settings_add_the_variables_their_defaults_name() -> None:
    @attrs.frozen
    class Channel:
        token_env: str = "BOT_TOKEN"
        title: str = "not a secret at all"

    @attrs.frozen
    class Settings:
        channels: list[Channel] = attrs.field(factory=lambda: [Channel()])

    secrets = Secrets()
    secrets.add_settings(Settings(), {"BOT_TOKEN": TOKEN})
    assert secrets.scrub(f"GET /bot{TOKEN}/getUpdates: not a secret at all") == (
        "GET /bot[secret]/getUpdates: not a secret at all"
    )


def test_values_shorter_than_the_minimum_are_left_alone() -> None:
    short = "x" * (MIN_LENGTH - 1)
    secrets = Secrets([short, "y" * MIN_LENGTH])
    assert secrets.scrub(f"{short} {'y' * MIN_LENGTH}") == f"{short} {MARK}"


def test_json_escaped_and_percent_encoded_forms_are_scrubbed_too() -> None:
    quoted = 'pa"ss\\word-9'
    secrets = Secrets([quoted, TOKEN])
    assert secrets.scrub('{"password": "pa\\"ss\\\\word-9"}') == '{"password": "[secret]"}'
    assert secrets.scrub("https://api.example/bot123456%3AAAE-bot-token-value/x") == (
        "https://api.example/bot[secret]/x"
    )


def test_a_value_holding_another_is_replaced_whole() -> None:
    secrets = Secrets(["abcdef", "abcdef-and-more"])
    assert secrets.scrub("abcdef-and-more abcdef") == f"{MARK} {MARK}"


def test_contract_values_are_rebuilt_scrubbed_in_every_block() -> None:
    secrets = Secrets([KEY])
    message = Message(
        "assistant",
        (
            TextBlock(f"the key is {KEY}"),
            ToolCallBlock("c1", "shell.exec", {"argv": ["echo", KEY], KEY: 1}),
            ToolOutputBlock("c1", f'{{"stdout": "{KEY}\\n"}}'),
        ),
        metadata={"nested": [{"deep": KEY}]},
    )
    clean, body = secrets.encode(message)
    assert KEY not in body and KEY not in repr(clean)
    assert clean.blocks[0] == TextBlock("the key is [secret]")
    assert clean.blocks[1] == ToolCallBlock("c1", "shell.exec", {"argv": ["echo", MARK], MARK: 1})
    assert clean.metadata == {"nested": [{"deep": MARK}]}
    denied, text = secrets.encode(Deny(f"no, {KEY}", "guard"))
    assert denied == Deny("no, [secret]", "guard") and KEY not in text


def test_a_value_without_a_secret_is_returned_as_it_is() -> None:
    secrets = Secrets([KEY])
    message = Message.of("user", "nothing to hide")
    assert secrets.encode(message)[0] is message


# ---------------------------------------------------------------- logging


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of no particular owner, printing through a plain handler and formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("some.library.unrelated")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_every_log_record_of_the_process_is_scrubbed(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    secrets = Secrets([KEY, TOKEN])
    protect_logs(secrets)
    logger.info("POST https://api.telegram.org/bot%s/sendMessage with %r", TOKEN, {"key": KEY})
    logger.warning(f"inline {KEY}")
    try:
        raise RuntimeError(f"the server echoed {KEY}")
    except RuntimeError:
        logger.exception("call failed")
    logger.error("%s %s", KEY)  # arguments that do not fit the message
    printed = stream.getvalue()
    assert KEY not in printed and TOKEN not in printed
    assert "POST https://api.telegram.org/bot[secret]/sendMessage with {'key': '[secret]'}" in printed
    assert "inline [secret]" in printed
    assert "RuntimeError: the server echoed [secret]" in printed
    assert "log arguments that do not fit the message: ('[secret]',)" in printed


def test_records_without_a_secret_keep_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    secrets = Secrets([KEY])
    protect_logs(secrets)
    with caplog.at_level(logging.INFO):
        logging.getLogger("turnkit.test").info("turn %s took %d ms", "t1", 12)
        logging.getLogger("turnkit.test").info("key %s", KEY)
    plain, secret = caplog.records
    assert (plain.msg, plain.args) == ("turn %s took %d ms", ("t1", 12))
    assert (secret.getMessage(), secret.args) == ("key [secret]", ())
