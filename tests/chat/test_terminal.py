"""``turnkit chat`` end to end: the real console script in a subprocess.

Most tests feed it through a pipe (no terminal: no prompt, no readline) and
read its stdout; one runs it on a pseudo-terminal to check the line editing
and the history file. What was said is then read back with ``turnkit
sessions show`` from the same store.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.dists import run_turnkit, subprocess_env, turnkit_command

# The echo model named: chosen, it answers without the notice a default echo model gets on stderr.
CONFIG = '[store]\nurl = "t.db"\n\n[model]\nname = "echo"\n'
BANNER = re.compile(r"^turnkit chat with agent 'default', session (\S+)$")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder with a turnkit.toml whose store is t.db beside it."""
    (tmp_path / "turnkit.toml").write_text(CONFIG)
    return tmp_path


def chat(home: Path, *lines: str, errors: str = "") -> list[str]:
    """Run ``turnkit --config … chat`` with ``lines`` on stdin; its stdout lines.

    It must exit 0 and print ``errors`` (nothing, by default) on stderr.
    """
    argv = [*turnkit_command(), "--config", str(home / "turnkit.toml"), "chat"]
    given = "".join(f"{line}\n" for line in lines)
    done = subprocess.run(
        argv, input=given, capture_output=True, text=True, cwd=home, env=subprocess_env(), timeout=60
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stderr == errors, done.stderr
    return done.stdout.splitlines()


def show(home: Path, session_id: str) -> str:
    result = run_turnkit("--config", str(home / "turnkit.toml"), "sessions", "show", session_id, timeout=60)
    assert result.returncode == 0, str(result)
    return result.stdout


def test_talk_new_sessions_fork_and_quit(home: Path) -> None:
    out = chat(
        home,
        "hello there, agent",
        "/new",
        "/sessions",
        "second",
        "/fork",
        "in the fork",
        "/sessions",
        "/quit",
        "never read",
    )
    first = BANNER.fullmatch(out[0])
    assert first is not None, out
    s1 = first.group(1)
    assert out[1] == "/help lists the commands; /quit or Ctrl-D leaves."
    assert out[2] == "hello there, agent", "the streamed reply, printed once"
    assert out[3].startswith("new session ")
    s2 = out[3].removeprefix("new session ")
    assert out[4:6] == [f"*  {s2}  active  0 messages", f"   {s1}  active  2 messages  hello there, agent"]
    assert out[6] == "second"
    assert out[7].startswith(f"forked session {s2}: now in ")
    s3 = out[7].removeprefix(f"forked session {s2}: now in ")
    assert out[8] == "in the fork"
    assert out[9:] == [
        f"*  {s3}  active  2 messages  fork of {s2}  in the fork",
        f"   {s2}  active  2 messages  second",
        f"   {s1}  active  2 messages  hello there, agent",
    ], "nothing after /quit is read"
    assert len({s1, s2, s3}) == 3

    assert "user: hello there, agent" in show(home, s1)
    assert "assistant: hello there, agent" in show(home, s1)
    forked = show(home, s3)
    assert f"forked from {s2}" in forked
    assert "user: in the fork" in forked and "assistant: in the fork" in forked


def test_end_of_input_leaves_and_the_next_chat_continues_the_session(home: Path) -> None:
    out = chat(home, "hi")
    assert out[2:] == ["hi"]
    again = chat(home, "again")
    assert again[0] == out[0], "the same session is continued"
    assert again[2:] == ["again"]
    session_id = BANNER.fullmatch(out[0]).group(1)  # type: ignore[union-attr]
    stored = show(home, session_id)
    assert re.search(r"user: hi\n.*assistant: hi\n.*user: again\n.*assistant: again\n", stored, re.S), stored


def test_switch_continues_another_session_by_a_prefix_of_its_id(home: Path) -> None:
    out = chat(home, "first", "/new", "second")
    s1 = BANNER.fullmatch(out[0]).group(1)  # type: ignore[union-attr]
    refused = "/switch: no session id starts with 'nope'\nunknown command /swich; /help lists them\n"
    back = chat(home, "/switch nope", "/swich", f"/switch {s1[:8]}", "third", errors=refused)
    assert back[2:] == [f"now in session {s1}", "third"]
    assert "user: third" in show(home, s1)


def test_on_a_terminal_lines_are_edited_with_readline_and_kept_in_history(home: Path) -> None:
    (home / "turnkit.toml").write_text(CONFIG + '\n[service.chat.terminal]\nhistory_file = "history"\n')
    argv = [*turnkit_command(), "--config", str(home / "turnkit.toml"), "chat"]
    leader, follower = pty.openpty()
    env = subprocess_env(env={"TERM": "xterm"})
    process = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, cwd=home, env=env)
    os.close(follower)
    try:
        screen = read_until(leader, b"you> ")
        os.write(leader, b"helo\x02l\r")  # Ctrl-B moves back one character: "hello"
        screen += read_until(leader, b"you> ")
        os.write(leader, b"\x04")  # Ctrl-D on an empty line leaves
        assert process.wait(timeout=30) == 0, screen
    finally:
        process.kill()
        os.close(leader)

    assert (home / "history").read_text().splitlines()[-1] == "hello"
    session_id = re.search(rb"session (\w+)", screen).group(1).decode()  # type: ignore[union-attr]
    assert "user: hello" in show(home, session_id)


def read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    """Read the pseudo-terminal until ``needle`` shows up; everything read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} did not show up; the screen so far: {seen!r}")
        seen += os.read(fd, 4096)
    return seen
