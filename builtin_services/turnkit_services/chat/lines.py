"""Reading a file descriptor's lines without blocking the event loop, and without a stop waiting for them.

The terminal channel reads the user's lines with it; a channel serving a
protocol over stdin (turnkit-mcp's stdio transport) reads its client's. A
read that blocks in a thread the loop waits on would hold up a stop until
the next line arrived; here each read runs in a daemon thread the process
does not wait for.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class LineReader:
    """Reads the user's lines without blocking the event loop.

    Each read runs in a new daemon thread, so a stop while the user is typing
    never waits for them: the thread ends with the process. A terminal is
    read with ``input()`` (readline's line editing); a pipe or a file as raw
    bytes from the descriptor, which holds no lock a stopping interpreter
    would wait for.
    """

    def __init__(self, fd: int, tty: bool) -> None:
        self._fd = fd
        self._tty = tty
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._ended = False

    async def read(self, prompt: str) -> str | None:
        """The next line without its line end, or ``None`` at the end of the input."""
        if self._tty:
            try:
                return await _in_thread(lambda: input(prompt))
            except EOFError:
                return None
        while "\n" not in self._buffer and not self._ended:
            data = await _in_thread(lambda: os.read(self._fd, 65536))
            self._ended = not data
            self._buffer += self._decoder.decode(data, final=self._ended)
        if not self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition("\n")
        return line.removesuffix("\r")


async def _in_thread(read: Callable[[], T]) -> T:
    """``read()`` in a daemon thread (see :class:`LineReader`)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if not future.done():  # not cancelled meanwhile
            future.set_result(result)

    def fail(error: Exception) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        # The loop may be closed by the time the user presses Enter: then nobody waits.
        try:
            result = read()
        except Exception as exc:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fail, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(succeed, result)

    threading.Thread(target=run, name="turnkit chat input", daemon=True).start()
    return await future
