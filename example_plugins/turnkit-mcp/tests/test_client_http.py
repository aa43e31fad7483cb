"""A streamable-HTTP MCP server, reached with headers read from the agent's environment."""

from __future__ import annotations

import logging

import pytest
from conftest import TOKEN, HttpToolbox, offered, outputs, wait_for, with_servers
from turnkit.testing import AgentHarness, tool_call


def test_the_headers_from_the_environment_reach_the_server(
    tmp_path, http_toolbox: HttpToolbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = AgentHarness(tmp_path, env={"TOOLBOX_AUTH": f"Bearer {TOKEN}"})
    try:
        with_servers(agent, web={"url": http_toolbox.url, "headers_env": {"Authorization": "TOOLBOX_AUTH"}})
        agent.script(tool_call("web.echo", text="over HTTP"), "done")
        result = agent.send("echo over HTTP")
        [output] = outputs(agent, result.turn.session_id)
        assert (output.output, output.is_error) == ("over HTTP", False)
        assert "web.picture" in {tool.name for tool in agent.prompts[-1].tools}
    finally:
        agent.stop()
    assert all(TOKEN not in record.getMessage() for record in caplog.records)  # never logged


def test_a_server_refusing_the_headers_offers_nothing_and_is_reported(
    tmp_path, http_toolbox: HttpToolbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    agent = AgentHarness(tmp_path, env={"TOOLBOX_AUTH": "Bearer not-the-token"})
    try:
        plugin = with_servers(
            agent, web={"url": http_toolbox.url, "headers_env": {"Authorization": "TOOLBOX_AUTH"}}
        )
        result = agent.send("hi")
        assert result.turn.status == "completed" and agent.prompts[-1].tools == ()
        assert offered(plugin) == set()
    finally:
        agent.stop()
    assert any(
        record.getMessage().startswith("mcp server web could not start: ") for record in caplog.records
    )


def test_a_server_going_away_is_reported_and_its_tools_withdrawn(
    turnkit_agent: AgentHarness, http_toolbox: HttpToolbox, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("TOOLBOX_AUTH", f"Bearer {TOKEN}")
    plugin = with_servers(
        turnkit_agent, web={"url": http_toolbox.url, "headers_env": {"Authorization": "TOOLBOX_AUTH"}}
    )
    turnkit_agent.script(tool_call("web.echo", text="gone?"), "so it is")
    turnkit_agent.start()
    assert "web.echo" in offered(plugin)
    http_toolbox.kill()
    result = turnkit_agent.send("echo")
    [output] = outputs(turnkit_agent, result.turn.session_id)
    assert output.is_error
    assert output.output == (
        "server web closed the connection during the call to web.echo; it is connected again for later turns"
    )
    wait_for(lambda: offered(plugin) == set())
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("mcp server web failed: ") for message in messages)


def test_a_restarted_server_is_connected_again(
    turnkit_agent: AgentHarness, http_toolbox: HttpToolbox, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("TOOLBOX_AUTH", f"Bearer {TOKEN}")
    plugin = with_servers(
        turnkit_agent, web={"url": http_toolbox.url, "headers_env": {"Authorization": "TOOLBOX_AUTH"}}
    )
    turnkit_agent.script(tool_call("web.echo", text="new session"), "ok")
    turnkit_agent.start()
    http_toolbox.restart()  # the new server answers the old session's requests with 404
    withdrawn = "mcp server web ended the session (HTTP 404; it may have restarted); its tools are withdrawn"
    wait_for(lambda: any(record.getMessage().startswith(withdrawn) for record in caplog.records))
    wait_for(lambda: "web.echo" in offered(plugin))
    result = turnkit_agent.send("echo")
    assert outputs(turnkit_agent, result.turn.session_id)[0].output == "new session"
