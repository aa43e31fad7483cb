"""Servers that hang, crash, change their tools, fail to start, and are ended with the agent."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
from conftest import alive, offered, outputs, stdio_toolbox, wait_for, with_servers
from turnkit.testing import AgentHarness, tool_call


def warnings_about(caplog: pytest.LogCaptureFixture, server: str) -> list[str]:
    """The plugin's warnings naming ``server``, one line each."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.getMessage().startswith(f"mcp server {server} ")
    ]


def test_a_hanging_call_times_out_and_is_cancelled(turnkit_agent: AgentHarness, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    with_servers(turnkit_agent, box=stdio_toolbox(timeout=0.5))
    turnkit_agent.script(tool_call("box.hang", marker=str(marker)), "gave up")
    result = turnkit_agent.send("wait for ever")
    assert result.reply is not None and result.reply.text == "gave up"
    [output] = outputs(turnkit_agent, result.turn.session_id)
    assert (output.output, output.is_error) == ("box.hang timed out after 0.5s", True)
    wait_for(lambda: marker.exists())  # the server was told the call is cancelled
    assert marker.read_text(encoding="utf-8") == "CANCELLED"


def test_a_server_crashing_mid_call_fails_that_call_and_is_back_for_the_next_turn(
    turnkit_agent: AgentHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    plugin = with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.script(
        tool_call("box.crash"), "it crashed", tool_call("box.echo", text="back again"), "fine"
    )
    first = turnkit_agent.send("crash")
    [output] = outputs(turnkit_agent, first.turn.session_id)
    assert output.is_error
    assert (
        output.output == "server box exited during the call to box.crash; it is started again for later turns"
    )
    wait_for(lambda: bool(warnings_about(caplog, "box")))
    [warning] = warnings_about(caplog, "box")
    assert warning == (
        "mcp server box exited with status 3: crashing on purpose;"
        " its tools are withdrawn until it is connected again (in 1s)"
    )
    wait_for(lambda: "box.echo" in offered(plugin))
    second = turnkit_agent.send("echo", first.turn.session_id)
    assert second.reply is not None and second.reply.text == "fine"
    assert outputs(turnkit_agent, first.turn.session_id)[-1].output == "back again"


def test_a_changed_tool_list_is_listed_again(turnkit_agent: AgentHarness) -> None:
    plugin = with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.script(tool_call("box.grow"), "grown", tool_call("box.extra"), "called it")
    first = turnkit_agent.send("grow")
    assert "box.extra" not in {tool.name for tool in turnkit_agent.prompts[-1].tools}
    wait_for(lambda: "box.extra" in offered(plugin))  # after notifications/tools/list_changed
    turnkit_agent.send("call the new tool", first.turn.session_id)
    assert "box.extra" in {tool.name for tool in turnkit_agent.prompts[-1].tools}
    assert outputs(turnkit_agent, first.turn.session_id)[-1].output == "extra here"


def test_stopping_the_agent_ends_the_server_and_what_it_started(turnkit_agent: AgentHarness) -> None:
    with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.script(tool_call("box.spawn"), "spawned")
    result = turnkit_agent.send("start a process")
    pids = json.loads(outputs(turnkit_agent, result.turn.session_id)[0].output)
    assert alive(pids["server"]) and alive(pids["child"])
    assert os.getpgid(pids["child"]) == pids["server"] != os.getpgid(0)  # a process group of its own
    turnkit_agent.stop()
    wait_for(lambda: not alive(pids["server"]) and not alive(pids["child"]), timeout=5)


def test_a_server_that_cannot_start_is_reported_and_the_others_serve(
    turnkit_agent: AgentHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    plugin = with_servers(
        turnkit_agent,
        box=stdio_toolbox(),
        ghost={"command": "/nonexistent/mcp-server"},
        mute={"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"], "start_timeout": 0.3},
    )
    turnkit_agent.script(tool_call("box.echo", text="still here"), "ok")
    result = turnkit_agent.send("hi")
    assert result.turn.status == "completed"
    assert outputs(turnkit_agent, result.turn.session_id)[0].output == "still here"
    assert {tool.name.partition(".")[0] for tool in turnkit_agent.prompts[-1].tools} == {"box"}
    [ghost, *_] = warnings_about(caplog, "ghost")
    assert ghost.startswith("mcp server ghost could not start: FileNotFoundError: ")
    assert ghost.endswith("; trying again in 1s")
    [mute, *_] = warnings_about(caplog, "mute")
    assert mute == "mcp server mute did not start within 0.3s; trying again in 1s"
    assert {tool.name.partition(".")[0] for tool in plugin.tools()} == {"box"}
