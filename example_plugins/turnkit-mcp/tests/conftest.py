"""Fixtures: an agent with the mcp plugin and the test MCP server (``mcp_servers/toolbox.py``).

The agent is turnkit's in-process ``turnkit_agent``, with the plugin made
from this distribution's entry point; the MCP servers are real programs
written with the SDK: the plugin starts the stdio one itself, and
:func:`http_toolbox` runs the HTTP one on a free loopback port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from turnkit.testing import AgentHarness, entry_point_plugin
from turnkit_mcp import McpPlugin

if "mcp" not in {ep.name for ep in entry_points(group="turnkit.plugins")}:
    pytest.exit('the mcp plugin is not installed: pip install -e ".[test]" first', returncode=4)

PROJECT = Path(__file__).parent.parent
#: The test MCP server, run as a script by the interpreter running the tests.
TOOLBOX = Path(__file__).parent / "mcp_servers" / "toolbox.py"
#: The token the HTTP toolbox demands (``Authorization: Bearer …``).
TOKEN = "toolbox-token-for-the-tests"


def stdio_toolbox(**settings: Any) -> dict[str, Any]:
    """``[plugin.mcp.servers.NAME]`` of the stdio toolbox, with ``settings`` added."""
    return {"command": sys.executable, "args": [str(TOOLBOX), "stdio"], **settings}


def with_servers(agent: AgentHarness, **servers: dict[str, Any]) -> McpPlugin:
    """Register the plugin, made from the entry point, with ``servers``; return it."""
    plugin = entry_point_plugin(PROJECT, "mcp")
    assert isinstance(plugin, McpPlugin)
    agent.register(plugin, "mcp", settings={"servers": servers})
    return plugin


def offered(plugin: McpPlugin) -> set[str]:
    """The names of the tools the plugin offers now."""
    return {tool.name for tool in plugin.tools()}


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds, polling (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.02)


def outputs(agent: AgentHarness, session_id: str) -> list[Any]:
    """The tool outputs of a session, in order."""
    return [
        block for message in agent.history(session_id) if message.role == "tool" for block in message.blocks
    ]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


class HttpToolbox:
    """The toolbox over streamable HTTP on a free loopback port, demanding :data:`TOKEN`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = self._spawn()
        wait_for(self._listening)

    def _spawn(self, *cue: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(TOOLBOX), "http", str(self.port), *cue],
            env={**os.environ, "TOOLBOX_TOKEN": TOKEN},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _listening(self) -> bool:
        assert self.process.poll() is None, "the HTTP toolbox exited"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """End the server at once, as in a crash."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Replace the server by a new one on the same port (which knows none of the old sessions).

        The new one is ready before the old one is killed, and listens a
        moment after: sooner than a client reconnects its event stream.
        """
        replacement = self._spawn("cue")
        assert replacement.stdout is not None and replacement.stdin is not None
        assert replacement.stdout.readline() == b"ready\n"
        self.kill()
        replacement.stdin.write(b"go\n")
        replacement.stdin.flush()
        self.process = replacement
        wait_for(self._listening)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def http_toolbox() -> Iterator[HttpToolbox]:
    """The HTTP toolbox, running for one test."""
    toolbox = HttpToolbox()
    try:
        yield toolbox
    finally:
        toolbox.kill()
