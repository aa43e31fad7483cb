"""The plugin in a real ``turnkit serve``: a turn over HTTP calls a tool; the trace shows who ran it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import alive, stdio_toolbox, wait_for
from turnkit.testing import tool_call
from turnkit.testing_served import ServedAgent


def sessions_show(served: ServedAgent, session_id: str) -> dict[str, Any]:
    """What ``turnkit sessions show SESSION --json`` says of a session of the served agent's store."""
    turnkit = Path(sys.executable).parent / "turnkit"
    command = [str(turnkit), "--config", str(served.config_path), "sessions", "show", session_id, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def test_a_served_turn_calls_a_tool_and_stopping_ends_the_server(turnkit_served: ServedAgent) -> None:
    turnkit_served.configure(
        plugin={"mcp": {"servers": {"box": stdio_toolbox()}}},
        model={"script": [tool_call("box.spawn")]},  # then the echo model says the tool's output
    )
    turnkit_served.start()
    body = json.dumps({"text": "start a process"}).encode()
    response = turnkit_served.post("/api/chats/me/messages", body, {"Content-Type": "application/json"})
    assert response.status == 200, response.text
    answer = response.json()
    pids = json.loads(answer["reply"])
    assert alive(pids["server"]) and alive(pids["child"])

    [turn] = sessions_show(turnkit_served, answer["session_id"])["turns"]
    served_by = [(c["point"], c["plugin"], c["outcome"]) for c in turn["trace"] if c["point"] == "tool_call"]
    assert served_by == [("tool_call", "mcp", "value")]

    assert turnkit_served.stop() == 0
    wait_for(lambda: not alive(pids["server"]) and not alive(pids["child"]), timeout=5)
