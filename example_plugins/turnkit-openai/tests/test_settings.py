"""``[plugin.openai]`` and the key: what the agent refuses to start with, and what it accepts."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest
from agents import KEY_ENV, UseOpenAI, entry_point
from loopback import Answer, ChatServer, completion
from turnkit.errors import ConfigError, PluginConfigureError
from turnkit.testing import AgentHarness
from turnkit_openai import OpenAIPlugin, OpenAISettings


def test_the_entry_point_is_the_plugin_class() -> None:
    point = entry_point()
    assert (point.name, point.load()) == ("openai", OpenAIPlugin)
    assert OpenAIPlugin.settings_class is OpenAISettings
    try:
        installed = distribution("turnkit-openai").entry_points
    except PackageNotFoundError:
        pytest.skip("turnkit-openai is not installed (running from the source tree)")
    assert [(p.group, p.name, p.value) for p in installed] == [(point.group, point.name, point.value)]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        pytest.param(
            {"tmeout": 5}, r"extra fields found \(tmeout\) @ \$\.plugin\.openai\b", id="unknown-key"
        ),
        pytest.param({"model": None}, r"required field missing @ \$\.plugin\.openai\.model", id="no-model"),
        pytest.param({"timeout": "fast"}, r"expected float.* @ \$\.plugin\.openai\.timeout", id="type"),
        pytest.param(
            {"timeout": 0}, r"timeout must be greater than 0, got 0\.0 @ \$\.plugin\.openai", id="timeout"
        ),
        pytest.param({"max_retries": -1}, r"max_retries must not be negative", id="retries"),
        pytest.param({"temperature": 3}, r"temperature must be between 0 and 2, got 3", id="temperature"),
        pytest.param({"model": " "}, r"model must not be empty", id="blank-model"),
        pytest.param(
            {"base_url": "localhost:8080/v1"}, r"base_url must be an http:// or https:// URL", id="url"
        ),
        pytest.param(
            {"headers": {"Authorization": "Bearer sk-123"}},
            r"headers must not carry the key \('Authorization'\).*api_key_env",
            id="key-in-headers",
        ),
        pytest.param(
            {"params": {"model": "x", "stream": True}}, r"params must not set model, stream", id="params"
        ),
    ],
)
def test_bad_settings_stop_the_start_naming_the_key(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI, overrides: dict[str, Any], problem: str
) -> None:
    use_openai(**overrides)
    with pytest.raises(ConfigError, match=problem):
        turnkit_agent.start()


def test_a_missing_key_stops_the_start(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TURNKIT_OPENAI_NO_SUCH_KEY", raising=False)
    use_openai(base_url="https://models.example.com/v1", api_key_env="TURNKIT_OPENAI_NO_SUCH_KEY")
    expected = (
        r"'openai' failed to configure: MissingKeyError: api_key_env: the environment variable "
        r"TURNKIT_OPENAI_NO_SUCH_KEY is not set \(or empty\); set it to the key for https://models\.example\.com/v1"
    )
    with pytest.raises(PluginConfigureError, match=expected):
        turnkit_agent.start()


def test_a_server_taking_no_key_is_reached_without_one(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI
) -> None:
    use_openai(base_url="https://models.example.com/v1", api_key_env="")
    turnkit_agent.start()  # no request is sent: only the start is checked


def test_a_loopback_server_needs_no_key(
    turnkit_agent: AgentHarness,
    chat_server: ChatServer,
    use_openai: UseOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_openai()
    monkeypatch.delenv(KEY_ENV)
    chat_server.script(Answer(body=completion("local answer")))
    result = turnkit_agent.send("hi")
    assert result.reply is not None and result.reply.text == "local answer"
    assert "authorization" not in chat_server.requests[0].headers


def test_defaults() -> None:
    settings = OpenAISettings(model="gpt-4o-mini")
    assert settings.completions_url == "https://api.openai.com/v1/chat/completions"
    assert (settings.api_key_env, settings.stream, settings.loopback) == ("OPENAI_API_KEY", None, False)
    assert OpenAISettings(model="m", base_url="http://[::1]:8000/v1/").completions_url == (
        "http://[::1]:8000/v1/chat/completions"
    )
