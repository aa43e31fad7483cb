"""Instructions on the command line, each command a real ``turnkit`` subprocess: a configured
``instructions_file``, ``sessions show`` naming the instructions of each turn (in short, in full,
as JSON), and a missing file refused in one line.

A session's own instructions are set through the Python API on the same store file, as a
service (the HTTP API) would.
"""

from __future__ import annotations

import re
from pathlib import Path

from turnkit.agent import Agent

from tests.support.dists import SESSION_LINE
from tests.support.dists import turnkit_exits as turnkit

PROMPT = "You are the support desk of Example Ltd.\nAnswer briefly.\n"
CONFIG = '[agent]\ninstructions_file = "prompt.md"\n[store]\nurl = "t.db"\n'


def home(tmp_path: Path) -> Path:
    (tmp_path / "turnkit.toml").write_text(CONFIG)
    (tmp_path / "prompt.md").write_text(PROMPT, encoding="utf-8")
    return tmp_path


async def test_sessions_show_names_the_instructions_each_turn_used(tmp_path: Path) -> None:
    cwd = home(tmp_path)
    sent = turnkit("send", "hello", cwd=cwd)
    assert sent.stdout == "hello\n"
    (session_id,) = SESSION_LINE.findall(sent.stderr)
    async with Agent(cwd / "turnkit.toml", env={}, resume=False) as agent:
        await agent.sessions.set_instructions(session_id, "Answer in French.")
    turnkit("send", "again", "--session", session_id, cwd=cwd)

    shown = turnkit("sessions", "show", session_id, cwd=cwd).stdout
    assert 'instructions of its own: "Answer in French." (17 characters)' in shown
    per_turn = re.findall(r"^ {9}instructions: (.*)$", shown, re.MULTILINE)
    assert per_turn == [
        f'"You are the support desk of Example Ltd." ({len(PROMPT)} characters)',
        '"Answer in French." (17 characters)',
    ]

    full = turnkit("sessions", "show", session_id, "--instructions", cwd=cwd).stdout
    assert "         instructions:\n           You are the support desk of Example Ltd.\n" in full
    assert "           Answer briefly.\n" in full

    document = turnkit("sessions", "show", session_id, "--json", cwd=cwd).json()
    assert document["session"]["instructions"] == "Answer in French."
    assert [t["instructions"] for t in document["turns"]] == [PROMPT, "Answer in French."]
    exported = turnkit("sessions", "export", session_id, cwd=cwd).json()
    assert exported == document


def test_a_missing_instructions_file_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cwd = home(tmp_path)
    (cwd / "prompt.md").unlink()
    refused = turnkit("send", "hello", cwd=cwd, expect=1)
    assert refused.stdout == ""
    expected = (
        f"turnkit.toml: cannot read {cwd / 'prompt.md'}: No such file or directory"
        " @ $.agent.instructions_file"
    )
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].endswith(expected), refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (cwd / "t.db").exists(), "the agent stopped before opening its store"
