"""``examples/http-agent/README.md``, followed as written: its commands, in a copy of the repository's layout.

The two example plugins are built and installed into target folders (the
README's ``pip install`` lines), the README's ``.venv/bin/turnkit`` is this
environment's console script with them on ``PYTHONPATH``, and ``serve``
runs on a free port (``--port 0``) that the curl line then uses instead of
8321. No token is set: the example must work without one.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.dists import EXAMPLE_PLUGINS, REPO, install_distribution, subprocess_env, turnkit_command
from tests.support.markdown import blocks

EXAMPLE = REPO / "examples" / "http-agent"
PORT = 8321
LISTENING = re.compile(r"turnkit: HTTP API on http://127\.0\.0\.1:(\d+)")


def commands() -> list[tuple[str, list[str]]]:
    """The README's shell commands in order, each with the output lines it shows."""
    found: list[tuple[str, list[str]]] = []
    for block in blocks((EXAMPLE / "README.md").read_text()):
        if block.language != "console":
            continue
        lines = block.code.splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        for line in lines:
            if line.startswith("$ ") or not prompted:
                found.append((line.removeprefix("$ ").split("  #")[0].strip(), []))
            elif found:
                found[-1][1].append(line)
    return found


def is_setup(command: str) -> bool:
    """A line making the venv and installing into it: what ``install_distribution`` stands in for."""
    return command.startswith("python3 -m venv") or command.startswith(".venv/bin/pip install")


def test_the_example_readme_works_as_written(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "http-agent")
    paths = [
        install_distribution(EXAMPLE_PLUGINS / name, tmp_path / "site" / name)
        for name in ("turnkit-redact", "turnkit-jsonl-audit")
    ]
    env = subprocess_env(paths)
    turnkit = shlex.join(turnkit_command())
    steps = commands()
    assert [text for text, _ in steps if is_setup(text)] == [
        "python3 -m venv .venv",
        ".venv/bin/pip install ./hookspecs ./builtin_services . ./example_plugins/turnkit-redact"
        " ./example_plugins/turnkit-jsonl-audit",
    ], "the setup this test stands in for"
    server = None
    try:
        for text, shown in steps:
            if is_setup(text):
                continue
            command = text.replace(".venv/bin/turnkit", turnkit)
            if command.endswith(" serve"):
                server = subprocess.Popen(
                    [*shlex.split(command), "--port", "0"],
                    cwd=tmp_path,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert server.stderr is not None
                port = None
                for line in server.stderr:
                    if found := LISTENING.search(line):
                        port = found.group(1)
                        break
                assert port is not None, "serve did not say where it listens"
                continue
            if port_needed := str(PORT) in command:
                assert server is not None, "the README talks to the agent before serving it"
                command = command.replace(str(PORT), port)
            result = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, f"$ {command}\n{result.stdout}{result.stderr}"
            if "plugins" in command.split():
                loaded = [
                    line.split()[0] for line in result.stdout.splitlines() if "[plugin, loaded]" in line
                ]
                assert loaded == ["jsonl-audit", "redact"], result.stdout
            if shown:  # a JSON object, elided (…): the keys it names, with the values it gives
                answer = json.loads(result.stdout)
                for key, value in re.findall(r'"(\w+)": ?("[^"…]*"|…)', shown[0]):
                    assert key in answer, f"$ {command}\n{result.stdout}"
                    assert value == "…" or answer[key] == json.loads(value), f"$ {command}\n{result.stdout}"
            if port_needed:
                assert json.loads(result.stdout)["reply"] == "mail me at [email]"
            if "sessions list" in command:
                assert len(result.stdout.splitlines()) == 1, result.stdout
        assert server is not None
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
    assert (tmp_path / "examples" / "http-agent" / "example.db").is_file(), "the store is beside the config"
