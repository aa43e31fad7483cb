"""A real ``turnkit serve`` process for one test: what a channel's tests post platform requests to.

A channel is only tested for real when the platform's requests reach the
agent's HTTP server and a crash between accepting a message and answering
it can happen. :class:`ServedAgent` (the ``turnkit_served`` fixture of
:mod:`turnkit.testing`) writes a ``turnkit.toml`` in the test's folder (a
SQLite store there, the HTTP channel on a free loopback port that stays the
same across restarts, so the platform emulator keeps one callback URL),
runs ``turnkit serve`` in a subprocess, and can stop it, SIGKILL it and
start it again on the same store. The model is the built-in echo model:
the reply is the inbound text.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

#: What ``turnkit serve`` prints once its HTTP server listens.
LISTENING = "turnkit: HTTP API on "


@dataclass(frozen=True)
class HttpResponse:
    """One answer of the served agent."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class ServedAgent:
    """``turnkit serve`` in a subprocess, on a store in ``directory``; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config_path = directory / "turnkit.toml"
        #: Environment variables added to the process's (secrets named by ``*_env`` settings);
        #: the test's own ``TURNKIT_*`` variables are not passed on, so they cannot change the outcome.
        self.env: dict[str, str] = {}
        self.port = _free_port()
        self._tables: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._output: list[str] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ configuring

    def configure(self, **tables: Any) -> None:
        """Merge ``tables`` into ``turnkit.toml`` (``service={"chat": {...}}``); applies at the next start."""
        _merge(self._tables, tables)

    @property
    def url(self) -> str:
        """Where the HTTP server listens: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        """Everything the process (every start of it) wrote to stderr so far."""
        with self._lock:
            return "".join(self._output)

    # ------------------------------------------------------------------ running

    def start(self, timeout: float = 30.0) -> None:
        """Start ``turnkit serve``; return once its HTTP server listens (raise with its output if it ends)."""
        if self._process is not None:
            raise RuntimeError("the served agent is running: stop() or kill() it first")
        tables: dict[str, Any] = {
            "store": {"url": "turnkit.db"},
            "service": {"chat": {"http": {"host": "127.0.0.1", "port": self.port}}},
        }
        _merge(tables, self._tables)
        self.config_path.write_text(tomli_w.dumps(tables), encoding="utf-8")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TURNKIT_")}
        env = {**inherited, **self.env, "PYTHONUNBUFFERED": "1"}
        with self._lock:
            started_at = len(self._output)
        process = subprocess.Popen(
            [*_turnkit(), "--config", str(self.config_path), "serve"],
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._process = process
        reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while LISTENING not in "".join(self._output[started_at:]):
            if process.poll() is not None:
                self._process = None
                reader.join(timeout=5)  # the error carries everything the process wrote
                raise RuntimeError(f"turnkit serve exited with {process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"turnkit serve did not listen within {timeout}s:\n{self.output}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a service manager stops it; waits and returns its exit code."""
        process = self._take()
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TimeoutError(f"turnkit serve did not stop within {timeout}s:\n{self.output}") from None

    def kill(self) -> None:
        """SIGKILL: the process ends at once, as in a crash, leaving what it had not finished."""
        process = self._take()
        process.kill()
        process.wait()

    def close(self) -> None:
        """Kill the process if it still runs (the fixture does this when the test ends)."""
        if self._process is not None:
            self.kill()

    def _take(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the served agent is not running: start() it first")
        process, self._process = self._process, None
        return process

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._lock:
                self._output.append(line.decode("utf-8", "replace"))

    # ------------------------------------------------------------------ talking to it

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> HttpResponse:
        """One HTTP request to the served agent."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return HttpResponse(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def post(
        self, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> HttpResponse:
        """``POST path`` with ``body`` (JSON platforms: ``json.dumps(...).encode()``)."""
        return self.request("POST", path, body, headers, timeout)

    def wait_for(self, check: Callable[[], bool], timeout: float = 10.0, every: float = 0.05) -> None:
        """Wait until ``check()`` is true (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout}s; the agent's output:\n{self.output}")
            time.sleep(every)

    # ------------------------------------------------------------------ the store

    def turns(self) -> list[dict[str, Any]]:
        """Every turn in the store, oldest first: session, id, status, channel, chat, inbound and reply text.

        Read straight from the store, like ``turnkit sessions``, so it works
        whether or not the process runs.
        """
        return asyncio.run(self._turns())

    async def _turns(self) -> list[dict[str, Any]]:
        from .config import StoreConfig
        from .store import open_store

        store = await open_store(StoreConfig(url="turnkit.db"), str(self.directory))
        try:
            found: list[dict[str, Any]] = []
            for session in await store.list_sessions():
                texts: dict[str, dict[str, str]] = {}
                for stored in await store.messages(session.session_id):
                    if stored.turn_id is not None:
                        texts.setdefault(stored.turn_id, {})[stored.message.role] = stored.message.text
                for turn in await store.turns(session.session_id):
                    said = texts.get(turn.turn_id, {})
                    found.append(
                        {
                            "session_id": turn.session_id,
                            "turn_id": turn.turn_id,
                            "status": turn.status,
                            "queued_at": turn.queued_at,
                            "channel": turn.origin.channel if turn.origin else None,
                            "chat_id": turn.origin.chat_id if turn.origin else None,
                            "thread_id": turn.origin.thread_id if turn.origin else None,
                            "inbound": said.get("user"),
                            "reply": said.get("assistant"),
                        }
                    )
            return sorted(found, key=lambda t: t["queued_at"])
        finally:
            await store.close()


def _merge(into: dict[str, Any], tables: Mapping[str, Any]) -> None:
    """Merge ``tables`` into ``into``, table by table, copying (the caller's dicts stay the caller's)."""
    for key, value in tables.items():
        if isinstance(value, Mapping):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value


def _turnkit() -> list[str]:
    """The ``turnkit`` console script of this interpreter's environment (else the one on PATH)."""
    script = Path(sys.executable).parent / "turnkit"
    if script.is_file():
        return [str(script)]
    found = shutil.which("turnkit")
    if found is None:
        raise FileNotFoundError(f"no turnkit console script next to {sys.executable} or on PATH")
    return [found]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
