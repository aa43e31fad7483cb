"""A stdio MCP server: a child process in a process group of its own, with a minimal environment.

The SDK's own stdio transport passes a fixed list of the agent process's
variables and cannot be told which; this one gives the server exactly
:func:`minimal_env` (the agent's environment, with its tokens and keys, is
never passed whole), and tells its owner when the server went away (the
``ended`` callback) and how (:meth:`ServerProcess.describe_exit`). It is ended
whole: the server's stdin is closed, then its process group gets SIGTERM and
SIGKILL, so that nothing it started outlives it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress

import anyio
import attrs
import mcp_types
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client import Transport
from mcp.client._transport import TransportStreams  # the SDK names it in a private module only
from mcp.shared.message import SessionMessage

#: The variables every server gets from the agent's environment, when set there.
BASE_VARIABLES = ("PATH", "HOME", "LANG")
#: ``PATH`` when the agent's environment has none.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: The longest JSON-RPC message read from a server (a line of its stdout): images come inline.
MAX_MESSAGE = 64 * 2**20
#: How long a server gets to exit after its stdin closes, then after SIGTERM, before SIGKILL.
GRACE = 1.0
#: How many of the server's last stderr lines are kept to say why it exited, and their longest part kept.
STDERR_TAIL = 3
MAX_STDERR_LINE = 2000


def minimal_env(host: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """``PATH``, ``HOME`` and ``LANG``, then the variables ``names`` lists, from ``host`` where set."""
    env = {"PATH": DEFAULT_PATH}
    env.update({name: host[name] for name in (*BASE_VARIABLES, *names) if name in host})
    return env


@attrs.frozen
class Launch:
    """What to run: the program and its arguments (no shell), its environment and folder."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str


class ServerProcess:
    """One run of a stdio server; :meth:`transport` starts it and ends it (with its group)."""

    def __init__(self, launch: Launch, logger: logging.Logger, ended: Callable[[], None]) -> None:
        """``ended`` is called when the server's stdout ends: it exited, or will answer nothing more."""
        self.launch = launch
        self.logger = logger
        self._ended = ended
        self._process: Process | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL)

    def describe_exit(self) -> str:
        """How the server ended, in words: its exit status and its last line on stderr."""
        code = self._process.returncode if self._process is not None else None
        if code is None:
            status = "closed its output"
        elif code < 0:
            status = f"was killed by {_signal_name(-code)}"
        else:
            status = f"exited with status {code}"
        return f"{status}: {self._stderr[-1]}" if self._stderr else status

    def transport(self) -> Transport:
        """The SDK transport over this process (start it by entering it)."""
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[TransportStreams]:
        process = await anyio.open_process(
            list(self.launch.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.launch.cwd,
            env=dict(self.launch.env),
            start_new_session=True,
        )
        self._process = process
        incoming, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, outgoing = anyio.create_memory_object_stream[SessionMessage](0)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._read, process, incoming)
                tasks.start_soon(self._write, process, outgoing)
                tasks.start_soon(self._keep_stderr, process)
                try:
                    yield read_stream, write_stream
                finally:
                    with anyio.CancelScope(shield=True):
                        await _end(process)
                    tasks.cancel_scope.cancel()
        finally:
            for stream in (incoming, read_stream, write_stream, outgoing):
                stream.close()

    async def _read(
        self, process: Process, incoming: MemoryObjectSendStream[SessionMessage | Exception]
    ) -> None:
        """Pass each line of the server's stdout on as a message (a line that is none, as the error)."""
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        try:
            async with incoming:
                while True:
                    try:
                        line = await lines.receive_until(b"\n", MAX_MESSAGE)
                    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
                        return
                    except anyio.DelimiterNotFound:
                        self.logger.warning("a message over %d bytes: reading no further", MAX_MESSAGE)
                        return
                    if line.strip():
                        await incoming.send(_parse(line))
        except anyio.BrokenResourceError:
            return  # the session has gone: nobody reads any more
        finally:
            self._ended()

    async def _write(self, process: Process, outgoing: MemoryObjectReceiveStream[SessionMessage]) -> None:
        assert process.stdin is not None
        async with outgoing:
            async for message in outgoing:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                try:
                    await process.stdin.send(data.encode("utf-8"))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return  # the server is gone; the reader sees its stdout end

    async def _keep_stderr(self, process: Process) -> None:
        """Log the server's stderr (debug) and keep its last lines, which often say why it stopped.

        It is read to its end whatever it holds (a line too long is cut), so
        that a server writing much there never blocks on a full pipe.
        """
        assert process.stderr is not None
        pending = b""
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            async for chunk in process.stderr:
                *complete, pending = (pending + chunk).split(b"\n")
                pending = pending[:MAX_STDERR_LINE]
                for line in complete:
                    self._note(line)
        self._note(pending)

    def _note(self, line: bytes) -> None:
        text = line[:MAX_STDERR_LINE].decode("utf-8", "replace").rstrip()
        if text:
            self._stderr.append(text)
            self.logger.debug("%s", text)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # the session reports it, and goes on
        return exc


async def _end(process: Process) -> None:
    """Close stdin, then SIGTERM and SIGKILL the process group, each after a grace period.

    The group is signalled even when the server itself has exited: what it
    started (a shell's children, a worker pool) is in the group too.
    """
    assert process.stdin is not None
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await process.stdin.aclose()
    with anyio.move_on_after(GRACE):
        await process.wait()
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sent)
        with anyio.move_on_after(GRACE):
            await process.wait()
