"""Every command the README shows runs as a new user would type it, and exits 0.

The commands come from the README's shell blocks (```console and the like): in
a block with ``$`` prompts the lines after a prompt are its output, otherwise
each line is a command (``# …`` comments dropped). A Python block that talks
to the served agent (it names the README's HTTP port) runs too; the plugin
examples run in ``test_readme_plugin.py``.

Each block runs in a workspace of its own, its commands in order, in
subprocesses of the ``turnkit`` of this environment: a fresh folder holding
the store in which the README's first command (``turnkit send "hello"``)
has run, and ``WORKSPACE_CONFIG`` as ``turnkit.toml`` (or as the file a
command's ``--config`` names). A block that reaches the README's HTTP port
runs against a real ``turnkit serve`` of the README's own HTTP configuration,
as written but on a free port; curl fails on an HTTP error there (a
``.curlrc`` in the workspace's home says ``fail-with-body``). ``turnkit serve``
and ``turnkit console`` (on a free port) are started, must announce where they
listen, and must exit 0 on SIGTERM;
``turnkit chat`` gets a question on stdin. ``ID`` stands for the workspace's
session, a ``postgresql://`` URL for a fresh database of the test server.

A command that cannot run here is in ``SKIPPED`` with its reason, by its exact
text: a new or changed command runs, and fails until it works offline or is
listed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.markdown import Block, blocks

README = Path(__file__).resolve().parents[2] / "README.md"
TURNKIT = Path(sys.executable).parent / "turnkit"

SHELL_LANGUAGES = {"console", "shell", "sh", "bash"}
#: Seconds a command may take; ``turnkit serve`` to announce its address; to stop after SIGTERM.
COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

#: What the README's commands need beyond the embedded defaults, in every workspace.
WORKSPACE_CONFIG = """\
[service.chat.http]
port = 0                 # `turnkit serve` on a free port (the default 8321 may be taken)

[service.shell]
allow = ["ls", "git"]    # what the README's `turnkit shell exec` examples run
"""

#: Commands that cannot run in a test, by their exact text (comments dropped), and why.
SKIPPED = {
    (
        "python3 -m venv .venv && .venv/bin/pip install ./hookspecs ./builtin_services ."
        ' && .venv/bin/turnkit send "hello"'
    ): (
        "installs from the package index (tests/packaging installs these distributions into fresh"
        ' venvs from a loopback index); its `turnkit send "hello"` is every workspace\'s first turn here'
    ),
    "pip install ./hookspecs ./builtin_services '.[postgresql]'": (
        "installs from the package index; the tests' environment has the postgresql extra"
    ),
    "TELEGRAM_BOT_TOKEN=123456:ABC… turnkit serve": (
        "long-polls api.telegram.org; tests/chat/test_telegram.py serves the channel"
        " against a loopback Bot API"
    ),
    "pip install ./example_plugins/turnkit-feishu": (
        "installs into the test's own environment; tests/packaging installs every channel into a"
        " fresh venv from a loopback index and answers a platform request through each"
    ),
    "turnkit --config /path/to/turnkit.toml mcp": (
        "the command of turnkit-mcp, which the test's environment lacks (an installed plugin would change"
        " what the runtime's tests see); its own tests run it under the MCP SDK's client, and"
        " tests/packaging under another agent's mcp plugin"
    ),
    "pip install tox && tox run-parallel": (
        "installs tox from the package index, and runs the whole suite, this test included"
    ),
}

#: How a command line starts in a block that shows output.
PROMPT = "$ "
#: Where a serving agent says it listens (``turnkit: HTTP API on http://127.0.0.1:8321``).
LISTENING = re.compile(r"https?://[\w.\-]+:(\d+)")
#: The placeholder the README writes for a session id.
SESSION_PLACEHOLDER = re.compile(r"\bID\b")
POSTGRES_URL = re.compile(r"postgresql://\S+")
#: Variables of the test's own environment that would change what a command does.
DROPPED_VARIABLES = re.compile(
    r"TURNKIT_.*|TELEGRAM_BOT_TOKEN|OPENAI_.*|(?i:(http|https|all|no)_proxy)|CURL_HOME|XDG_CONFIG_HOME"
)


@dataclass
class Command:
    """One command of the README: its text, its line, and the output the README shows for it."""

    text: str
    line: int
    shown: list[str] = field(default_factory=list)


def strip_comment(line: str) -> str:
    """``line`` without a trailing ``# …`` comment (a ``#`` outside quotes, after a space)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands_of(block: Block) -> list[Command]:
    """The commands of a shell block, each with the output shown after it."""
    lines = block.code.splitlines()
    prompted = any(line.startswith(PROMPT) for line in lines)
    found: list[Command] = []
    for offset, line in enumerate(lines):
        if prompted and not line.startswith(PROMPT):
            if found and line.strip():
                found[-1].shown.append(line)
            continue
        text = strip_comment(line.removeprefix(PROMPT))
        if text:
            found.append(Command(text, block.line + offset))
    return found


def words_of(command: str) -> list[str]:
    """The words of a command after any leading ``VAR=value`` assignments."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words.pop(0)
    return words


def subcommand(command: str) -> str | None:
    """The turnkit command a line runs (``serve`` in ``turnkit --config a.toml serve``), if any."""
    words = words_of(command)
    if not words or words[0] != "turnkit":
        return None
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        if rest.pop(0) == "--config" and rest:
            rest.pop(0)
    return rest[0] if rest else None


def config_file(command: str) -> str | None:
    """The file a command's ``--config`` names, if it names one."""
    words = words_of(command)
    for index, word in enumerate(words[:-1]):
        if word == "--config":
            return words[index + 1]
        if word.startswith("--config="):
            return word.removeprefix("--config=")
    return None


def http_example() -> tuple[int, str] | None:
    """The port of the README's HTTP configuration block, and that block served on a free port."""
    for block in blocks(README.read_text(encoding="utf-8")):
        port = re.search(r"^port = (\d+)", block.code, re.M)
        if block.language == "toml" and "[service.chat.http]" in block.code and port:
            return int(port.group(1)), block.code.replace(port.group(0), "port = 0", 1)
    return None


HTTP_EXAMPLE = http_example()


def reaches_the_http_port(code: str) -> bool:
    return (
        HTTP_EXAMPLE is not None
        and re.search(rf"(localhost|127\.0\.0\.1):{HTTP_EXAMPLE[0]}\b", code) is not None
    )


def readme_blocks() -> list[Block]:
    """The README's blocks whose commands this file runs."""
    found = blocks(README.read_text(encoding="utf-8"))
    return [
        block
        for block in found
        if block.language in SHELL_LANGUAGES
        or (block.language == "python" and reaches_the_http_port(block.code))
    ]


BLOCKS = readme_blocks()


# ---------------------------------------------------------------------- running commands


def environment(home: Path) -> dict[str, str]:
    """The environment of a user's shell: this environment's ``turnkit`` first on PATH, a home of its own."""
    env = {name: value for name, value in os.environ.items() if not DROPPED_VARIABLES.fullmatch(name)}
    env["PATH"] = f"{TURNKIT.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["CURL_HOME"] = str(home)
    return env


def report(command: str, returncode: int | None, stdout: str, stderr: str) -> str:
    """What a failing command said, for the assertion message."""
    return f"`{command}` exited {returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"


@dataclass
class Workspace:
    """A folder where a user follows one block of the README."""

    root: Path
    session_id: str
    env: dict[str, str]
    postgres_url: str | None = None

    def expand(self, command: str, port: int | None) -> str:
        """``command`` with the README's placeholders and the HTTP port replaced by the real ones."""
        command = SESSION_PLACEHOLDER.sub(self.session_id, command)
        if self.postgres_url is not None:
            command = POSTGRES_URL.sub(self.postgres_url, command)
        if port is not None and HTTP_EXAMPLE is not None:
            command = re.sub(rf"(localhost|127\.0\.0\.1):{HTTP_EXAMPLE[0]}\b", rf"\g<1>:{port}", command)
        return command

    def run(self, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    @contextmanager
    def serving(self, argv: list[str]) -> Iterator[int]:
        """Run ``turnkit serve`` until it says where it listens, yield that port, then SIGTERM: exit 0."""
        process = subprocess.Popen(
            argv,
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        stderr: list[str] = []
        reader = threading.Thread(target=_read_lines, args=(process, lines, stderr), daemon=True)
        reader.start()
        try:
            port = _announced_port(lines)
            said = report(shlex.join(argv), process.poll(), "", "".join(stderr))
            assert port is not None, f"{said}\n(no address announced within {START_TIMEOUT}s)"
            yield port
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                stdout, _ = process.communicate(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, _ = process.communicate()
            reader.join(STOP_TIMEOUT)
        said = report(shlex.join(argv), process.returncode, stdout, "".join(stderr))
        assert process.returncode == 0, f"{said}\n(after SIGTERM)"


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str | None], kept: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        kept.append(line)
        lines.put(line)
    lines.put(None)


def _announced_port(lines: queue.Queue[str | None]) -> int | None:
    """The port of the first address the server prints, or ``None`` if it ends or says none in time."""
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            return None
        if line is None:
            return None
        found = LISTENING.search(line)
        if found:
            return int(found.group(1))


def assert_shown_output(command: Command, stdout: str) -> None:
    """Where the README shows a JSON answer, the real one has its keys and every value not elided (…)."""
    if len(command.shown) != 1:
        return
    try:
        shown = json.loads(command.shown[0])
    except json.JSONDecodeError:
        return
    if not isinstance(shown, dict):
        return
    actual = json.loads(stdout)
    assert actual.keys() == shown.keys(), f"`{command.text}` (README line {command.line}) answers {stdout}"
    for key, value in shown.items():
        if not (isinstance(value, str) and "…" in value):
            assert actual[key] == value, (
                f"`{command.text}` (README line {command.line}): {key} is {actual[key]!r}"
            )


def run_command(workspace: Workspace, command: Command, port: int | None) -> None:
    """Run one README command in ``workspace`` as a user would, and check it succeeds."""
    text = workspace.expand(command.text, port)
    which = subcommand(text)
    if which in ("serve", "console"):
        argv = words_of(text)
        if which == "console" and "--port" not in argv:
            argv += ["--port", "0"]  # its default port (8322) may be taken
        with workspace.serving(argv):
            pass
        return
    stdin = "hello\n" if which == "chat" else ""  # a piped chat prints only the answers
    result = workspace.run(["bash", "-c", text], stdin)
    said = report(text, result.returncode, result.stdout, result.stderr)
    assert result.returncode == 0, f"README line {command.line}: {said}"
    if which == "chat":
        assert "hello" in result.stdout, f"README line {command.line}: {said}"
    assert_shown_output(command, result.stdout)


def run_python(workspace: Workspace, block: Block, port: int) -> None:
    code = workspace.expand(block.code, port)
    result = workspace.run([sys.executable, "-c", code])
    said = report("python", result.returncode, result.stdout, result.stderr)
    assert result.returncode == 0, f"README line {block.line}: {said}"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def first_turn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's first command in an empty folder: it prints the reply, the new session's id on stderr."""
    folder = tmp_path_factory.mktemp("first-turn")
    result = subprocess.run(
        ["turnkit", "send", "hello"],
        cwd=folder,
        env=environment(folder),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    said = report("turnkit send hello", result.returncode, result.stdout, result.stderr)
    assert result.returncode == 0, said
    assert result.stdout == "hello\n"
    found = re.search(r"\b[0-9a-f]{32}\b", result.stderr)
    assert found, f"no session id on stderr: {result.stderr}"
    session_id = found.group(0)
    assert (folder / "turnkit.db").is_file(), "the store is a SQLite file next to the configuration"
    return folder, session_id


def make_workspace(
    request: pytest.FixtureRequest, root: Path, first: tuple[Path, str], block: Block
) -> Workspace:
    """A folder for ``block``: the first turn's store, the configuration, a git repository if it runs git."""
    folder, session_id = first
    for path in folder.glob("turnkit.db*"):
        shutil.copy(path, root / path.name)
    (root / ".curlrc").write_text("fail-with-body\n", encoding="utf-8")
    code = block.code
    named = [config_file(c.text) for c in commands_of(block)] if block.language != "python" else []
    config = HTTP_EXAMPLE[1] if HTTP_EXAMPLE is not None and reaches_the_http_port(code) else WORKSPACE_CONFIG
    (root / next((name for name in named if name), "turnkit.toml")).write_text(config, encoding="utf-8")
    if re.search(r"\bgit\b", code):
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    postgres = request.getfixturevalue("postgres_url") if POSTGRES_URL.search(code) else None
    return Workspace(root, session_id, environment(root), postgres)


# ---------------------------------------------------------------------- the tests


def test_the_readme_shows_commands_and_the_http_example() -> None:
    assert TURNKIT.is_file(), f"no turnkit beside {sys.executable}: install the checkout (pip install -e .)"
    assert any(block.language in SHELL_LANGUAGES for block in BLOCKS)
    assert HTTP_EXAMPLE is not None, "the README's [service.chat.http] example with its port is gone"
    assert any(block.language == "python" for block in BLOCKS), "the OpenAI client example is gone"


def test_every_skipped_command_is_one_the_readme_shows() -> None:
    shown = {command.text for block in BLOCKS if block.language != "python" for command in commands_of(block)}
    assert not set(SKIPPED) - shown, f"no longer in the README: {sorted(set(SKIPPED) - shown)}"


def test_the_first_command_prints_the_reply(first_turn: tuple[Path, str]) -> None:
    folder, session_id = first_turn
    assert [path.name for path in folder.iterdir() if not path.name.startswith(".")] == ["turnkit.db"]
    assert len(session_id) == 32


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: f"line-{block.line}")
def test_the_commands_of_a_block_succeed(
    block: Block, request: pytest.FixtureRequest, tmp_path: Path, first_turn: tuple[Path, str]
) -> None:
    to_run = [] if block.language == "python" else [c for c in commands_of(block) if c.text not in SKIPPED]
    if block.language != "python" and not to_run:
        pytest.skip("; ".join(SKIPPED[c.text] for c in commands_of(block)))
    workspace = make_workspace(request, tmp_path, first_turn, block)
    if not reaches_the_http_port(block.code):
        for command in to_run:
            run_command(workspace, command, None)
        return
    with workspace.serving([str(TURNKIT), "serve"]) as port:
        if block.language == "python":
            run_python(workspace, block, port)
        for command in to_run:
            run_command(workspace, command, port)
