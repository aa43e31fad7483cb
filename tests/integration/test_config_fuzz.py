"""No configuration file gives a traceback or a hang.

A few hundred files are made from a realistic ``turnkit.toml`` (every table, the built-in
services' too) by seeded random mutations: values of other types, negative, huge, nan and
infinite numbers, empty and control-character strings, unknown and duplicated keys and tables,
deep nesting, truncation, flipped bytes, bytes that are not UTF-8. Each file is either accepted,
and then an agent starts on it, runs a turn and stops, or refused with a :class:`TurnkitError` of one line
that names the file. A handful of them, and the issue's reproductions, go through the real
command line too.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from turnkit.agent import Agent
from turnkit.config import load_config
from turnkit.errors import TurnkitError

from tests.support.dists import run_turnkit

SEED = 13
CASES = 300
#: Far more than a start and a stop take (well under a second); only a hang gets near it.
PATIENCE = 10.0

BASE = """\
[agent]
id = "fuzz"
log_level = "ERROR"

[store]
url = "data/agent.db"
synchronous = "normal"
busy_timeout = 5.0
thread = false
lease = 15.0
heartbeat = 3.0
poll = 0.05
pool_size = 8
idempotency_keep = 86400
group_commit = 0.0

[model]
name = "echo"
context_window = 8192
context_windows = { big = 100000 }

[[model.script]]
text = "Hello."

[[model.script]]
tool = "memory.search"
args = { query = "x" }

[turns]
history = 50
max_tool_steps = 8
keep_recent = 6
interrupted = "rerun"
inbox_poll = 0.5

[services]
order = ["memory", "chat"]
required = ["chat"]
disabled = ["task"]

[plugins]
required = []
guard_timeout = 5.0
pipeline_timeout = 10.0
resolve_timeout = 10.0
effect_timeout = 5.0
call_workers = 8
inline_after = 20
watchdog = 0.25
hung_limit = 2
effect_workers = 4
effect_queue = 10000

[plugins.order]
turn_inbound = ["redact"]

[plugins.timeouts]
turn_completed = 2.0
chat_outbound = 1

[secrets]
env = ["FUZZ_TOKEN"]

[service.chat]
channels = ["http"]
denied_reply = "No."
failed_reply = "Oops."

[service.chat.http]
host = "127.0.0.1"
port = 0
token_env = "FUZZ_TOKEN"
max_body = 100000
openai = true
shutdown_timeout = 2

[service.chat.telegram]
token_env = "FUZZ_BOT"
poll_timeout = 30
retry_delay = 2.0
leader_ttl = 10.0

[service.chat.terminal]
history_file = ""
prompt = "> "

[service.shell]
allow = ["echo", "ls"]
root = ""
timeout = 5.0
max_timeout = 60.0
kill_grace = 1.0
max_output = 65536
max_processes = 4
env = { LANG = "C" }

[service.memory]
recall = true
recall_limit = 3
min_similarity = 0.0
max_chars = 4000

[service.task]
timezone = "UTC"
missed = "once"
poll = 1.0
grace = 60.0
claim_lease = 60.0
keep_runs = 100

[[service.task.tasks]]
name = "nightly"
instructions = "Back up."
cron = "0 2 * * *"
"""

#: What a value is replaced by: other types, out of range, not finite, empty, odd text.
VALUES = [
    '"x"',
    '""',
    '" "',
    '"\\u0000"',
    '"a\\nb"',
    '"\\u001b[31m"',
    '"ünï cödé"',
    "0",
    "1",
    "2.5",
    "100",
    "-1",
    "0.001",
    "1e18",
    "-1e18",
    "9223372036854775807",
    "nan",
    "inf",
    "-inf",
    "true",
    "[]",
    "{}",
    '[1, "a"]',
    "{ a = { b = 1 } }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    '"sqlite:///"',
    '"mysql://x"',
    '"/"',
]

ASSIGNMENT = re.compile(r"^([\w.\"-]+) = ")
HEADER = re.compile(r"^\[\[?[\w.\"-]+\]\]?$")


def _replace_value(rng: random.Random, lines: list[str]) -> None:
    index = rng.choice([i for i, line in enumerate(lines) if ASSIGNMENT.match(line)])
    match = ASSIGNMENT.match(lines[index])
    assert match is not None
    lines[index] = match.group(0) + rng.choice(VALUES)


def _nest_value(rng: random.Random, lines: list[str]) -> None:
    index = rng.choice([i for i, line in enumerate(lines) if ASSIGNMENT.match(line)])
    match = ASSIGNMENT.match(lines[index])
    assert match is not None
    depth = rng.choice([3, 33, 40, 400, 3000])
    nested = "[" * depth + "]" * depth if rng.random() < 0.5 else "{ a = " * depth + "1" + " }" * depth
    lines[index] = match.group(0) + nested


def _unknown_key(rng: random.Random, lines: list[str]) -> None:
    index = rng.choice([i for i, line in enumerate(lines) if HEADER.match(line)])
    key = rng.choice(["tiemout", "effect_timeouts", "source", '"bad\\u001bkey"', '"two\\nlines"', "x.y.z"])
    lines.insert(index + 1, f"{key} = {rng.choice(VALUES)}")


def _duplicate_line(rng: random.Random, lines: list[str]) -> None:
    index = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines)), lines[index])


def _drop_line(rng: random.Random, lines: list[str]) -> None:
    del lines[rng.randrange(len(lines))]


def _odd_table(rng: random.Random, lines: list[str]) -> None:
    index = rng.choice([i for i, line in enumerate(lines) if HEADER.match(line)])
    lines[index] = rng.choice(
        ["[service.ghost]", "[plugin.ghost]", "[ghost]", "[[plugins]]", "[plugins.timeouts.deep]", "[source]"]
    )


LINE_MUTATIONS: list[Callable[[random.Random, list[str]], None]] = [
    _replace_value,
    _replace_value,
    _replace_value,
    _nest_value,
    _unknown_key,
    _duplicate_line,
    _drop_line,
    _odd_table,
]


def mutated(rng: random.Random) -> bytes:
    """One mutated file: one to three line mutations, then maybe damage to its bytes."""
    lines = BASE.splitlines()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        rng.choice(LINE_MUTATIONS)(rng, lines)
    data = bytearray("\n".join(lines).encode())
    damage = rng.random()
    if damage < 0.05:
        del data[rng.randrange(len(data)) :]  # truncated
    elif damage < 0.10:
        for _ in range(rng.randint(1, 4)):  # flipped bytes
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif damage < 0.13:
        data[rng.randrange(len(data)) : 0] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"])  # not UTF-8
    return bytes(data)


async def outcome(path: Path) -> str:
    """``accepted`` once an agent started on ``path``, ran a turn and stopped, else the refusal.

    Any exception other than a :class:`TurnkitError`, and a hang, escape to fail the test.
    """
    try:
        config = await asyncio.wait_for(asyncio.to_thread(load_config, path, {}), PATIENCE)
        agent = Agent(config, env={"FUZZ_TOKEN": "fuzz-secret"})
        await asyncio.wait_for(agent.start(), PATIENCE)
    except TurnkitError as exc:
        return str(exc)
    try:
        await asyncio.wait_for(agent.send("hi"), PATIENCE)  # its status may be anything
    finally:
        await asyncio.wait_for(agent.stop(), PATIENCE)
    return "accepted"


async def test_no_mutated_config_gives_a_traceback_or_a_hang(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kinds: Counter[str] = Counter()
    for number in range(CASES):
        folder = tmp_path / f"case{number}"
        folder.mkdir()
        path = folder / "turnkit.toml"
        path.write_bytes(mutated(rng))
        try:
            result = await outcome(path)
        except Exception as exc:
            raise AssertionError(f"case {number}: {type(exc).__name__} on\n{path.read_bytes()!r}") from exc
        if result == "accepted":
            kinds["accepted"] += 1
            continue
        assert "\n" not in result and str(path) in result, f"case {number}: {result!r}"
        assert "fuzz-secret" not in result
        kinds[result.split(": ")[1].split(" ")[0]] += 1
    # the corpus exercises both sides, and refusals of many kinds
    assert kinds["accepted"] >= CASES // 10, kinds
    assert CASES - kinds["accepted"] >= CASES // 2, kinds
    assert len(kinds) >= 10, kinds


def test_the_base_config_itself_starts_an_agent(tmp_path: Path) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text(BASE)
    assert asyncio.run(outcome(path)) == "accepted"


# ---------------------------------------------------------------------- through the command line

CLI_CASES = [
    # the reproductions: `send` hung for ever, `serve` spun at 100 % CPU
    ("send", b"[plugins]\neffect_workers = 0\n", "must be ≥ 1, got 0 @ $.plugins.effect_workers"),
    ("serve", b"[turns]\ninbox_poll = -1\n", "must be ≥ 0.01, got -1.0 @ $.turns.inbox_poll"),
    ("send", b"a = " + b"[" * 3000 + b"]" * 3000, "nested too deeply to read"),
    ("send", b'[agent]\nid = "\xff"\n', "not UTF-8 text (line 2: invalid start byte)"),
    ("send", b'[store]\nurl = "folder"\n', "unable to open database file @ $.store.url"),
    ("send", b'[services]\nrequired = ["nonexistent-service"]\n', "is not installed (installed services:"),
    ("sessions", b"[plugins.timeouts]\nturn_completed = nan\n", "must be a finite number, got nan"),
]


@pytest.mark.parametrize(("command", "content", "problem"), CLI_CASES)
def test_the_command_line_says_one_line_for_a_bad_config(
    tmp_path: Path, command: str, content: bytes, problem: str
) -> None:
    (tmp_path / "folder").mkdir()
    path = tmp_path / "turnkit.toml"
    path.write_bytes(content)
    args = {"send": ["send", "hi"], "serve": ["serve"], "sessions": ["sessions", "list"]}[command]
    result = run_turnkit("--config", str(path), *args, cwd=tmp_path, timeout=30)
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}: ") and problem in line, line


def test_random_bad_configs_through_the_command_line(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    for number in range(4):
        path = tmp_path / f"case{number}.toml"
        path.write_bytes(mutated(rng))
        result = run_turnkit("--config", str(path), "send", "hi", cwd=tmp_path, timeout=30)
        assert "Traceback" not in result.stderr, result
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        if errors:
            assert result.returncode != 0 and errors == result.stderr.splitlines(), result
