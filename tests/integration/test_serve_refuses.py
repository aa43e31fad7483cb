"""``turnkit serve`` refuses to serve less than it is configured to, and its options, in a subprocess.

A refusal is an exit 1 with one line in words on stderr, before anything
listens (or, for a port that is taken, as soon as the channel tries). A
serve that runs is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.dists import CliResult, run_turnkit, subprocess_env, turnkit_command

LISTENING = re.compile(r"turnkit: HTTP API on (http://\S+)")


def configure(folder: Path, text: str) -> None:
    (folder / "turnkit.toml").write_text('[store]\nurl = "t.db"\n' + text)


def refused(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``turnkit serve ARGS`` must exit 1 within the timeout; its one stderr line, without ``Error: ``."""
    result: CliResult = run_turnkit("serve", *args, cwd=folder, env=env, timeout=30)
    assert result.returncode == 1, str(result)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("turnkit: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), str(result)
    assert "Traceback" not in result.stderr and "Error('" not in result.stderr and "Error(" not in lines[0]
    return lines[0].removeprefix("Error: ")


class Served:
    """A running ``turnkit serve``: what it printed so far on stderr."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first stderr line matching ``pattern`` (waiting for it)."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := re.search(pattern, line))]
            return bool(found) or self.process.poll() is not None

        with self.changed:
            self.changed.wait_for(seen, timeout)
        assert found, f"no line matching {pattern!r}; stderr so far:\n" + "\n".join(self.lines)
        return found[0]


@contextmanager
def serving(folder: Path, *args: str) -> Iterator[Served]:
    process = subprocess.Popen(
        [*turnkit_command(), "serve", *args],
        cwd=folder,
        env=subprocess_env(()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)
    try:
        yield served
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "\n".join(served.lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_an_unknown_channel_stops_serve(tmp_path: Path) -> None:
    configure(tmp_path, '[service.chat]\nchannels = ["htp"]\n')
    error = refused(tmp_path)
    assert "service 'chat' failed to start: [service.chat] channels: unknown channel 'htp'" in error
    assert "did you mean 'http'?" in error


def test_nothing_to_serve_is_refused_saying_what_to_configure(tmp_path: Path) -> None:
    configure(tmp_path, "[service.chat]\nchannels = []\n")
    error = refused(tmp_path)
    assert error.startswith("turnkit.toml: nothing to serve: no channel in [service.chat] channels")
    assert 'channels = ["http"]' in error and "[[service.task.tasks]]" in error and "turnkit chat" in error


def test_a_scheduled_task_is_something_to_serve(tmp_path: Path) -> None:
    task = '[[service.task.tasks]]\nname = "brief"\ninstructions = "Brief me."\ncron = "0 8 * * *"\n'
    configure(tmp_path, "[service.chat]\nchannels = []\n" + task)
    with serving(tmp_path) as served:
        served.wait_for(r"^turnkit: agent 'default' serving \(task: 1 scheduled task\); Ctrl-C stops it$")


def test_a_service_that_fails_to_start_stops_serve_but_not_send(tmp_path: Path) -> None:
    configure(tmp_path, '[service.shell]\nroot = "no-such-folder"\n')
    error = refused(tmp_path, "--port", "0")
    assert re.fullmatch(
        r"required service 'shell' failed to start: \[service.shell\] root: '.*' is not a directory", error
    )
    sent = run_turnkit("send", "hi", cwd=tmp_path, timeout=60)
    assert (sent.returncode, sent.stdout) == (0, "hi\n"), "a one-off command runs without the shell"


def test_a_busy_port_is_one_line_in_words(tmp_path: Path) -> None:
    configure(tmp_path, "")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = refused(tmp_path, "--port", str(port))
    assert error == (
        f"service 'chat' stopped serving: [service.chat.http] cannot listen on 127.0.0.1:{port}:"
        " Address already in use"
    )


def test_a_channel_missing_its_token_stops_serve(tmp_path: Path) -> None:
    configure(tmp_path, '[service.chat.http]\nport = 0\ntoken_env = "MY_HTTP_TOKEN"\n')
    error = refused(tmp_path)
    assert error.endswith("[service.chat.http] token_env: the environment variable MY_HTTP_TOKEN is not set")


def test_host_port_and_log_level_options_and_a_log_line_per_turn(tmp_path: Path) -> None:
    configure(tmp_path, '[service.chat.http]\nhost = "0.0.0.0"\nport = 8321\n')
    with serving(tmp_path, "--host", "127.0.0.1", "--port", "0", "--log-level", "info") as served:
        address = served.wait_for(LISTENING.pattern).group(1)
        assert not address.endswith(":8321") and address.startswith("http://127.0.0.1:")
        body = httpx.post(f"{address}/api/chats/ann/messages", json={"text": "hello"}, timeout=30).json()
        assert body["status"] == "completed"
        line = served.wait_for(r"^INFO turnkit\.agent\.default: session \S+ turn \d+ \w+ in \d+ ms$")
    assert line.group(0).startswith(
        f"INFO turnkit.agent.default: session {body['session_id']} turn 1 completed in "
    )


def test_host_and_port_need_the_http_channel(tmp_path: Path) -> None:
    configure(tmp_path, '[service.chat]\nchannels = ["telegram"]\n')
    error = refused(tmp_path, "--port", "0")
    assert (
        error
        == "turnkit.toml: --host and --port set the http channel, which [service.chat] channels does not list"
    )


@pytest.mark.parametrize("args", [("--log-level", "LOUD"), ("--port", "70000")])
def test_bad_option_values_are_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    configure(tmp_path, "")
    result = run_turnkit("serve", *args, cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and f"Invalid value for '{args[0]}'" in result.stderr, str(result)
