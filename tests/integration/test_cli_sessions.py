"""``turnkit send`` and ``turnkit sessions …`` end to end, each run in a subprocess.

The console script of the test environment runs in a folder holding a
``turnkit.toml`` (or is pointed at one with ``--config``), on a SQLite file
next to it. A fork, which the CLI cannot make, is made through the Python
API on the same file; a guard denial comes from a real installed fixture
distribution.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit_hookspecs import ForkOptions

from tests.support.dists import (
    FIXTURE_DISTS,
    SESSION_LINE,
    CliResult,
    install_distribution,
    run_turnkit,
    subprocess_env,
)

CONFIG = '[store]\nurl = "t.db"\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working folder with a turnkit.toml whose store is t.db beside it."""
    (tmp_path / "turnkit.toml").write_text(CONFIG)
    return tmp_path


def turnkit(*args: str, cwd: Path, paths: tuple[Path, ...] = (), expect: int = 0) -> CliResult:
    """Run ``turnkit ARGS…`` in ``cwd``; fail with its whole output unless it exits ``expect``."""
    result = run_turnkit(*args, cwd=cwd, paths=paths, timeout=60)
    assert result.returncode == expect, str(result)
    return result


def new_session(text: str, cwd: Path, *options: str) -> str:
    """``turnkit [OPTIONS] send TEXT`` in a new session; its id (printed on stderr)."""
    result = turnkit(*options, "send", text, cwd=cwd)
    assert result.stdout == f"{text}\n"
    (session_id,) = SESSION_LINE.findall(result.stderr)
    return session_id


def export(session_id: str, cwd: Path) -> Any:
    return turnkit("sessions", "export", session_id, cwd=cwd).json()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    top = turnkit("--help", cwd=tmp_path).stdout
    for command in ("send", "sessions", "plugins", "hooks"):
        assert re.search(rf"^\s+{command}\s", top, re.MULTILINE), top
    sub = turnkit("sessions", "--help", cwd=tmp_path).stdout
    for command in ("list", "tree", "show", "export"):
        assert re.search(rf"^\s+{command}\s", sub, re.MULTILINE), sub
    assert not (tmp_path / "turnkit.db").exists(), "help opens no store"


def test_send_replies_on_stdout_and_continues_a_session(home: Path) -> None:
    session_id = new_session("hello", home)
    again = turnkit("send", "--session", session_id, "again", cwd=home)
    assert again.stdout == "again\n"
    assert "session:" not in again.stderr, "a continued session is not announced"

    document = export(session_id, home)
    assert [(t["number"], t["status"]) for t in document["turns"]] == [(1, "completed"), (2, "completed")]
    texts = [(m["message"]["role"], m["message"]["blocks"][0]["text"]) for m in document["messages"]]
    assert texts == [("user", "hello"), ("assistant", "hello"), ("user", "again"), ("assistant", "again")]
    assert (home / "t.db").is_file()


def test_send_json(home: Path) -> None:
    first = turnkit("send", "--json", "hi", cwd=home)
    assert first.stderr == "", "with --json everything is on stdout"
    result = first.json()
    turn = result["turn"]
    assert (turn["number"], turn["status"], turn["initiator"]) == (1, "completed", "user")
    assert turn["error"] is None
    assert result["reply"]["role"] == "assistant"
    assert result["reply"]["blocks"] == [{"type": "text", "text": "hi"}]
    assert result["deny"] is None

    second = turnkit("send", "--json", "--session", turn["session_id"], "more", cwd=home).json()
    assert (second["turn"]["session_id"], second["turn"]["number"]) == (turn["session_id"], 2)


def test_the_store_is_found_beside_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "turnkit.toml").write_text(CONFIG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(folder / "turnkit.toml")

    session_id = new_session("hello", elsewhere, "--config", config)
    assert (folder / "t.db").is_file() and not (elsewhere / "t.db").exists()
    listed = turnkit("--config", config, "sessions", "list", "--json", cwd=elsewhere).json()
    assert [s["session_id"] for s in listed] == [session_id]


def test_sessions_list(home: Path) -> None:
    turnkit("store", "migrate", cwd=home)  # an empty store: `sessions list` creates none
    assert turnkit("sessions", "list", cwd=home).stdout == "no sessions\n"
    older = new_session("one", home)
    newer = new_session("two", home)

    lines = turnkit("sessions", "list", cwd=home).stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [[newer, "chat", "active"], [older, "chat", "active"]]
    listed = turnkit("sessions", "list", "--json", cwd=home).json()
    assert [s["session_id"] for s in listed] == [newer, older], "most recently active first"
    assert {(s["kind"], s["status"], s["agent_id"], s["parent_session_id"]) for s in listed} == {
        ("chat", "active", "default", None)
    }
    assert turnkit("sessions", "list", "--kind", "task", "--json", cwd=home).json() == []
    assert turnkit("sessions", "list", "--agent", "someone-else", cwd=home).stdout == "no sessions\n"


async def fork(home: Path, session_id: str, reason: str) -> str:
    """Fork ``session_id`` through the Python API, as a plugin would."""
    async with Agent(home / "turnkit.toml", env=subprocess_env()) as agent:
        extension = await agent.sessions.extension(session_id, "test")
        return await extension.fork(ForkOptions(reason=reason))


async def test_tree_show_and_export_a_forked_session(home: Path) -> None:
    parent = new_session("hello", home)
    other = new_session("unrelated", home)
    child = await fork(home, parent, "why")

    tree = turnkit("sessions", "tree", cwd=home).stdout.splitlines()
    assert tree == [
        f"{parent}  chat active",
        f"    {child}  chat active  (why)",
        f"{other}  chat active",
    ]
    subtree = turnkit("sessions", "tree", child, cwd=home).stdout
    assert subtree.splitlines() == [f"{child}  chat active  (why)"]
    listed = turnkit("sessions", "list", cwd=home).stdout
    assert f"fork of {parent}" in listed

    shown = turnkit("sessions", "show", parent, cwd=home).stdout
    assert shown.startswith(f"session {parent}  kind=chat  status=active  agent=default\n")
    assert re.search(r"^  #\d+ user: hello$", shown, re.MULTILINE), shown
    assert re.search(r"^  #\d+ assistant: hello$", shown, re.MULTILINE), shown
    (turn,) = export(parent, home)["turns"]
    assert re.search(rf"^\s+1 {turn['turn_id']} completed\s+by user ", shown, re.MULTILINE), shown
    assert "turn_reply" not in shown and "audit:" not in shown

    traced = turnkit("sessions", "show", parent, "--trace", cwd=home).stdout
    assert re.search(r"^\s+turn_reply\s+resolve\s+turnkit-defaults\s+value\s", traced, re.MULTILINE), traced

    audited = turnkit("sessions", "show", parent, "--audit", cwd=home).stdout
    (line,) = [line for line in audited.splitlines() if " fork " in line]
    assert line.split()[2:4] == ["test", "fork"]
    assert json.loads(line.split(" fork ", 1)[1])["child"] == child

    child_shown = turnkit("sessions", "show", child, cwd=home).stdout
    fork_point = export(child, home)["session"]["fork_point"]
    assert f"forked from {parent} at message {fork_point}\n" in child_shown

    document = export(parent, home)
    assert document["session"]["session_id"] == parent
    messages = [m["message"] for m in document["messages"]]
    assert [(m["role"], m["blocks"], m["author"]) for m in messages] == [
        ("user", [{"type": "text", "text": "hello"}], None),
        ("assistant", [{"type": "text", "text": "hello"}], "echo"),
    ]
    assert [m["id"] for m in messages] == [str(m["id"]) for m in document["messages"]]
    (turn,) = document["turns"]
    assert (turn["number"], turn["status"], turn["initiator"]) == (1, "completed", "user")
    (reply_call,) = [call for call in turn["trace"] if call["point"] == "turn_reply"]
    assert (reply_call["kind"], reply_call["plugin"], reply_call["outcome"]) == (
        "resolve",
        "turnkit-defaults",
        "value",
    )
    (event,) = [e for e in document["audit"] if e["action"] == "fork"]
    assert event["extension_id"] == "test"
    assert (event["detail"]["child"], event["detail"]["reason"]) == (child, "why")
    child_document = export(child, home)
    assert child_document["session"]["parent_session_id"] == parent
    assert child_document["session"]["metadata"]["fork_reason"] == "why"


@pytest.mark.parametrize("command", [("show",), ("show", "--trace", "--audit"), ("export",), ("tree",)])
def test_an_unknown_session_is_named(home: Path, command: tuple[str, ...]) -> None:
    new_session("hello", home)
    result = turnkit("sessions", command[0], "no-such-session", *command[1:], cwd=home, expect=1)
    assert result.stdout == ""
    assert "no session 'no-such-session'" in result.stderr


@pytest.mark.parametrize(
    ("toml", "path"),
    [
        (CONFIG + "bogus = 1\n", "$.store"),
        (CONFIG + '[turns]\ninterrupted = "never"\n', "$.turns.interrupted"),
    ],
)
@pytest.mark.parametrize("command", [("send", "hi"), ("sessions", "list")])
def test_a_config_error_names_the_file_and_key(
    tmp_path: Path, toml: str, path: str, command: tuple[str, ...]
) -> None:
    (tmp_path / "bad.toml").write_text(toml)
    result = turnkit("--config", "bad.toml", *command, cwd=tmp_path, expect=1)
    assert result.stdout == ""
    assert "bad.toml" in result.stderr and path in result.stderr, result.stderr
    if "bogus" in toml:
        assert "bogus" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = turnkit("--config", "absent.toml", "sessions", "list", cwd=tmp_path, expect=1)
    assert "absent.toml: no such configuration file" in result.stderr


def test_a_failed_turn_exits_1_and_still_names_its_session(home: Path) -> None:
    # the scripted model asks for a tool, and no tool call is allowed: the turn fails
    script = '[turns]\nmax_tool_steps = 0\n[[model.script]]\ntool = "x.y"\n'
    (home / "turnkit.toml").write_text(CONFIG + script)
    result = turnkit("send", "hi", cwd=home, expect=1)
    assert result.stdout == ""
    assert "turn failed: " in result.stderr and "max_tool_steps" in result.stderr
    (session_id,) = SESSION_LINE.findall(result.stderr)
    (turn,) = export(session_id, home)["turns"]
    assert turn["status"] == "failed"


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """turnkit-fixture-good installed: its guard denies messages saying "forbidden"."""
    return install_distribution(FIXTURE_DISTS / "turnkit-fixture-good", tmp_path_factory.mktemp("good"))


def test_a_denied_turn_exits_2(home: Path, guard: Path) -> None:
    result = turnkit("send", "this is forbidden", cwd=home, paths=(guard,), expect=2)
    assert result.stdout == ""
    assert "turn denied: denied by good: the message contains a forbidden word" in result.stderr
    (session_id,) = SESSION_LINE.findall(result.stderr)
    document = export(session_id, home)
    assert [t["status"] for t in document["turns"]] == ["denied"]
    assert [m["message"]["role"] for m in document["messages"]] == ["user"], "the message stays, unanswered"

    as_json = turnkit(
        "send", "--json", "--session", session_id, "forbidden", cwd=home, paths=(guard,), expect=2
    )
    assert as_json.json()["deny"]["plugin"] == "good"
    allowed = turnkit("send", "--session", session_id, "fine", cwd=home, paths=(guard,))
    assert allowed.stdout == "fine\n"
