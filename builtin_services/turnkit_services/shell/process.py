"""A child process in its own process group, with its output read into capped buffers.

Every command runs as the leader of a new session (``start_new_session``),
so that a timeout or ``shell.close`` reaches everything it started: the
group gets SIGTERM, then SIGKILL after a grace period. (A program that
starts a session of its own with ``setsid`` leaves the group and is out of
reach, unless the command runs in the sandbox, whose PID namespace ends
with it: :mod:`.sandbox`.)

Output is read as it comes, so that a chatty child never blocks on a full
pipe; what exceeds the cap is counted and dropped, and the text handed back
ends with a marker saying how much was lost.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: How often a terminating group is polled for members still alive.
_POLL = 0.02


class CappedOutput:
    """One output stream's bytes not yet handed out, at most ``limit`` of them.

    Text is decoded incrementally: a character split between two reads is
    kept whole for the next one, until the stream is ``closed``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        #: Bytes dropped over the whole life of the stream.
        self.dropped_total = 0
        #: Whether the pipe has closed: nothing more will come.
        self.closed = False

    def add(self, chunk: bytes) -> None:
        """Keep what fits under the cap, count the rest."""
        room = max(self.limit - len(self._data), 0)
        self._data += chunk[:room]
        lost = len(chunk) - min(room, len(chunk))
        self._dropped += lost
        self.dropped_total += lost

    def __bool__(self) -> bool:
        return bool(self._data) or self._dropped > 0

    def take(self) -> tuple[str, bool]:
        """The text buffered so far (with a marker if bytes were dropped) and whether any were; then empty."""
        text = self._decoder.decode(bytes(self._data), final=self.closed)
        dropped = self._dropped
        self._data.clear()
        self._dropped = 0
        if dropped:
            text += f"\n[output truncated: {dropped} bytes dropped over max_output = {self.limit}]\n"
        return text, dropped > 0


class Process(asyncio.SubprocessProtocol):
    """A running command: its group, its capped stdout and stderr, its exit.

    It is the subprocess's protocol, so output lands in the buffers as the
    pipes deliver it and the exit is seen when the process exits (asyncio's
    own ``Process.wait`` also waits for every pipe to close, which a
    background child holding stdout can put off for ever).
    """

    def __init__(self, max_output: int) -> None:
        self.stdout = CappedOutput(max_output)
        self.stderr = CappedOutput(max_output)
        self.started = time.monotonic()
        self.ended: float | None = None
        #: Set whenever output arrives or the process exits; readers waiting for news clear it.
        self.activity = asyncio.Event()
        self._exited = asyncio.Event()
        self._drained = asyncio.Event()  # stdout and stderr both closed
        self._open_outputs = {1, 2}
        self._writable = asyncio.Event()  # stdin's pipe takes more (flow control)
        self._writable.set()
        self._transport: asyncio.SubprocessTransport | None = None

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        program: str,
        cwd: Path,
        env: Mapping[str, str],
        max_output: int,
        stdin: bool,
    ) -> Process:
        """Start ``argv`` (running ``program``, with ``argv[0]`` kept) as a new session's leader.

        ``stdin`` gives the process a pipe to write to; otherwise it reads
        from ``/dev/null``.
        """
        loop = asyncio.get_running_loop()
        _, process = await loop.subprocess_exec(
            lambda: cls(max_output),
            *argv,
            executable=program,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        return process

    # ------------------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.stdout if fd == 1 else self.stderr).add(data)
        self.activity.set()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._open_outputs:
            (self.stdout if fd == 1 else self.stderr).closed = True
            self._open_outputs.discard(fd)
        if not self._open_outputs:
            self._drained.set()
        if fd == 0:
            self._writable.set()  # a writer waiting for room learns the pipe is gone

    def process_exited(self) -> None:
        self.ended = time.monotonic()
        self._exited.set()
        self.activity.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------------ state

    @property
    def transport(self) -> asyncio.SubprocessTransport:
        assert self._transport is not None
        return self._transport

    @property
    def pid(self) -> int:
        """The process id, which is also its group's id."""
        return self.transport.get_pid()

    @property
    def running(self) -> bool:
        """Whether the process (the group's leader) has not exited yet."""
        return self.ended is None

    @property
    def exit_code(self) -> int | None:
        """The exit status, negative for the signal that ended it; ``None`` while running."""
        return self.transport.get_returncode()

    @property
    def duration(self) -> float:
        """Seconds from start to exit (or to now, while running)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def truncated(self) -> bool:
        """Whether any output was dropped over the cap, ever."""
        return bool(self.stdout.dropped_total or self.stderr.dropped_total)

    # ------------------------------------------------------------------ input

    async def write(self, data: bytes, eof: bool = False, timeout: float | None = None) -> None:
        """Write ``data`` to the process's stdin (then close it when ``eof``).

        Waits at most ``timeout`` seconds for a full pipe to take it: a
        process that does not read its input is an error, not a hang.
        """
        stdin = self.transport.get_pipe_transport(0)
        if not isinstance(stdin, asyncio.WriteTransport):
            raise ValueError("this process has no stdin to write to")
        if stdin.is_closing():
            raise ValueError("the process's stdin is closed (it exited, or it was written with eof)")
        stdin.write(data)
        try:
            await asyncio.wait_for(self._writable.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"the process did not take its input within {timeout}s") from None
        if stdin.is_closing():  # the write found the pipe broken
            raise ValueError("the process no longer reads its stdin (it exited or closed it)")
        if eof:
            stdin.close()

    # ------------------------------------------------------------------ exit

    async def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the process to exit; whether it has."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited.wait(), timeout)
        return not self.running

    async def stop(self, grace: float) -> None:
        """End the whole group (SIGTERM, SIGKILL after ``grace``) and collect the rest of the output.

        Also what a finished command goes through: whatever it left running
        in the background is ended with it. The output still in the pipes
        is read for at most ``grace`` seconds more (a process that escaped
        the group may hold them open); then the pipes are closed.
        """
        await terminate_group(self.pid, grace)
        await self.wait(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        self.transport.close()

    def kill_now(self) -> None:
        """SIGKILL the group at once, without waiting (a cancelled caller cannot wait)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.transport.close()


async def terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM the process group ``pgid``; SIGKILL what is left of it after ``grace`` seconds.

    Returns as soon as the group is empty. Members already dead but not yet
    reaped count as gone.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        await asyncio.sleep(_POLL)
        if not _group_alive(pgid):
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie (``killpg(…, 0)`` counts zombies)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs (macOS): zombies count as alive until reaped
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "pid (comm)": state, ppid, pgrp
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
