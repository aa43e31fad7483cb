"""``[plugin.mcp]``: nothing is offered without servers, and a wrong table stops the start, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import stdio_toolbox, with_servers
from turnkit.errors import ConfigError, PluginConfigureError
from turnkit.testing import AgentHarness


def test_without_servers_nothing_is_offered(turnkit_agent: AgentHarness) -> None:
    with_servers(turnkit_agent)
    result = turnkit_agent.send("hi")
    assert result.turn.status == "completed"
    assert turnkit_agent.prompts[-1].tools == ()


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        (
            {"command": "mcp-files", "url": "http://127.0.0.1:9/mcp"},
            "give command (a stdio server) or url (an HTTP server), not both @ $.plugin.mcp.servers['files']",
        ),
        (
            {"allow": ["read"]},
            "give command (a stdio server) or url (an HTTP server) @ $.plugin.mcp.servers['files']",
        ),
        (
            {"url": "http://127.0.0.1:9/mcp", "args": ["--verbose"]},
            "args: only a stdio server (command) takes it @ $.plugin.mcp.servers['files']",
        ),
        (
            {"command": "mcp-files", "headers_env": {"Authorization": "FILES_TOKEN"}},
            "headers_env: only an HTTP server (url) takes it @ $.plugin.mcp.servers['files']",
        ),
        ({"url": "ftp://example.org/mcp"}, "url: 'ftp://example.org/mcp' is not an http:// or https:// URL"),
        ({"url": "https://ann:pw@example.org/mcp"}, "url: give credentials with headers_env, not in the URL"),
        (
            {"command": "mcp-files", "env": ["API KEY"]},
            "env: 'API KEY' is not an environment variable's name",
        ),
        ({"command": "mcp-files", "timeout": 0}, "'timeout' must be > 0: 0"),
        (
            {"command": "mcp-files", "comand": "typo"},
            "extra fields found (comand) @ $.plugin.mcp.servers['files']",
        ),
    ],
)
def test_a_wrong_server_table_stops_the_start(
    turnkit_agent: AgentHarness, server: dict[str, Any], problem: str
) -> None:
    with_servers(turnkit_agent, files=server)
    with pytest.raises(ConfigError) as raised:
        turnkit_agent.start()
    assert problem in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1


def test_a_server_name_must_make_a_tool_prefix(turnkit_agent: AgentHarness) -> None:
    with_servers(turnkit_agent, **{"my.files": stdio_toolbox()})
    with pytest.raises(ConfigError, match=r"servers: 'my.files' is not a server name .* @ \$\.plugin\.mcp$"):
        turnkit_agent.start()


def test_a_header_from_a_missing_variable_stops_the_start(turnkit_agent: AgentHarness, monkeypatch) -> None:
    monkeypatch.delenv("FILES_TOKEN", raising=False)
    with_servers(
        turnkit_agent,
        files={"url": "http://127.0.0.1:9/mcp", "headers_env": {"Authorization": "FILES_TOKEN"}},
    )
    with pytest.raises(PluginConfigureError) as raised:
        turnkit_agent.start()
    assert str(raised.value) == (
        "plugin 'mcp' failed to configure: ValueError: servers.files.headers_env: Authorization is read from"
        " the environment variable FILES_TOKEN, which is not set (or empty)"
    )


def test_a_working_folder_that_is_missing_stops_the_start(
    turnkit_agent: AgentHarness, tmp_path: Path
) -> None:
    with_servers(turnkit_agent, files=stdio_toolbox(cwd="no-such-folder"))
    with pytest.raises(PluginConfigureError, match=r"servers\.files\.cwd: .*no-such-folder is not a folder"):
        turnkit_agent.start()
