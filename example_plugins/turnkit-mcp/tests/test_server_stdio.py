"""The agent as an MCP server on stdin and stdout: the SDK's stdio client starts ``turnkit mcp``.

This is how an MCP host (a desktop assistant, an editor) runs a server it
is configured with: as its subprocess, talking over the pipes, and closing
stdin to stop it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp.client.stdio import PROCESS_TERMINATION_TIMEOUT
from mcp.shared.exceptions import MCPError
from server_support import stdio_session, text_of, write_stdio_config
from turnkit.testing_served import ServedAgent

FAILED_REPLY = "That did not work; the message is kept."


async def test_serves_tools_and_turns_until_the_client_closes_stdin(tmp_path: Path) -> None:
    config = write_stdio_config(tmp_path, ["send", "memory.store", "memory.search"])
    with (tmp_path / "agent.log").open("w+", encoding="utf-8") as errlog:
        async with stdio_session(config, errlog) as session:
            listed = await session.list_tools()
            sent = await session.call_tool("send", {"text": "hello over stdio"})
            await session.call_tool("memory.store", {"text": "stdio carries the herons too"})
            found = await session.call_tool("memory.search", {"query": "herons"})
            closing = time.monotonic()
        closed_in = time.monotonic() - closing
        errlog.seek(0)
        output = errlog.read()
    assert sorted(tool.name for tool in listed.tools) == ["memory.search", "memory.store", "send"]
    assert not sent.is_error and "hello over stdio" in text_of(sent)
    assert [hit["text"] for hit in json.loads(text_of(found))] == ["stdio carries the herons too"]
    # The client closes stdin and waits that long for the server to exit before it signals it:
    # the agent stopped on its own.
    assert closed_in < PROCESS_TERMINATION_TIMEOUT, output
    assert "serving (chat: mcp)" in output  # the agent's own output went to stderr, not onto the protocol
    turns = await asyncio.to_thread(ServedAgent(tmp_path).turns)
    assert [(t["channel"], t["chat_id"], t["status"], t["inbound"]) for t in turns] == [
        ("mcp", "default", "completed", "hello over stdio")
    ]


async def test_a_failed_turn_is_a_tool_error_with_the_polite_reply(tmp_path: Path) -> None:
    # The built-in model's first answer is a tool call, which no tool step allows: the turn fails.
    config = write_stdio_config(
        tmp_path,
        ["send"],
        chat={"failed_reply": FAILED_REPLY},
        model={"script": [{"tool": "memory.search", "args": {"query": "x"}}]},
        turns={"max_tool_steps": 0},
    )
    with (tmp_path / "agent.log").open("w", encoding="utf-8") as errlog:
        async with stdio_session(config, errlog) as session:
            failed = await session.call_tool("send", {"text": "this one fails"})
            retried = await session.call_tool("send", {"text": "this one works"})
    assert failed.is_error
    assert text_of(failed) == FAILED_REPLY
    assert failed.structured_content is not None and failed.structured_content["status"] == "failed"
    assert not retried.is_error and "this one works" in text_of(retried)
    turns = await asyncio.to_thread(ServedAgent(tmp_path).turns)
    assert [(t["status"], t["inbound"]) for t in turns] == [
        ("failed", "this one fails"),
        ("completed", "this one works"),
    ]


async def test_a_call_the_client_gives_up_on_still_completes_its_turn(tmp_path: Path) -> None:
    # The built-in model's first answer runs a command taking a second; the client waits a fraction.
    config = write_stdio_config(
        tmp_path,
        ["send"],
        model={"script": [{"tool": "shell.exec", "args": {"argv": ["sleep", "1"]}}]},
        service={"shell": {"allow": ["sleep"]}},
    )
    served = ServedAgent(tmp_path)  # for reading the store while the client's agent runs
    with (tmp_path / "agent.log").open("w", encoding="utf-8") as errlog:
        async with stdio_session(config, errlog) as session:
            with pytest.raises(MCPError, match="timed out"):
                await session.call_tool("send", {"text": "take your time"}, read_timeout_seconds=0.2)
            await asyncio.to_thread(served.wait_for, lambda: _statuses(served) == ["completed"])
            after = await session.call_tool("send", {"text": "and now quickly"})
    assert not after.is_error and "and now quickly" in text_of(after)
    (slow, quick) = await asyncio.to_thread(served.turns)
    assert slow["inbound"] == "take your time"
    assert '"exit_code": 0' in (slow["reply"] or "")  # the command ran to its end (echoed back by the model)
    assert quick["status"] == "completed"


def _statuses(served: ServedAgent) -> list[str]:
    return [turn["status"] for turn in served.turns()]


def test_turnkit_mcp_serving_no_tool_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    config = write_stdio_config(tmp_path, [])
    done = subprocess.run(
        [str(Path(sys.executable).parent / "turnkit"), "--config", str(config), "mcp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # the protocol's stream: nothing but MCP goes there
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "[service.chat.channel.mcp] tools: no tool to serve" in errors[0]


async def test_a_served_tool_answers_with_the_agents_secrets_scrubbed(tmp_path: Path) -> None:
    # A credential in a command's environment is one of the agent's secrets (as for the model's calls).
    secret = "tool-token-for-mcp-clients-7"
    config = write_stdio_config(
        tmp_path,
        ["shell.exec"],
        service={"shell": {"allow": ["printenv"], "env": {"API_TOKEN": secret}}},
    )
    with (tmp_path / "agent.log").open("w", encoding="utf-8") as errlog:
        async with stdio_session(config, errlog) as session:
            printed = await session.call_tool("shell.exec", {"argv": ["printenv", "API_TOKEN"]})
    assert not printed.is_error
    assert secret not in text_of(printed)
    assert json.loads(text_of(printed))["stdout"].strip() == "[secret]"
