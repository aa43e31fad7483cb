"""Noticing, and naming, whatever blocks the event loop.

A plugin's ``def`` implementation that runs on the event loop (the fast
path, see dispatch.py) stops every session while it runs. Nothing can
interrupt it there, so the watchdog makes it visible: the loop stamps a
heartbeat a few times per ``threshold``; a thread of the watchdog's own
checks it, and when the loop has been stuck for longer it reads the loop
thread's stack (``sys._current_frames``, no cost while all is well) and logs
the plugin and point whose implementation is on it, or the innermost frame
when no implementation is.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Mapping
from time import monotonic
from types import CodeType, FrameType

log = logging.getLogger("turnkit.watchdog")

#: Implementation code → (plugin, point), as the dispatcher records it when it plans a point.
Owners = Mapping[CodeType, tuple[str, str]]


class Watchdog:
    """Logs once per stall when the loop it watches is blocked for more than ``threshold`` seconds."""

    def __init__(self, threshold: float, owners: Owners) -> None:
        self.threshold = threshold
        self._owners = owners
        self._interval = threshold / 4
        self._beat = monotonic()
        self._stop = threading.Event()
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        #: How many stalls were reported since start.
        self.stalls = 0

    def start(self) -> None:
        """Watch the running loop (call from it)."""
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._tick()
        self._thread = threading.Thread(target=self._watch, name="turnkit-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (call from the loop)."""
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _tick(self) -> None:
        self._beat = monotonic()
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self._interval):
            stuck = monotonic() - self._beat
            if stuck <= self.threshold:
                reported = False
            elif not reported:
                reported = True
                self.stalls += 1
                log.warning(
                    "the event loop has been blocked for %.2fs (more than [plugins] watchdog = %gs) by %s",
                    stuck,
                    self.threshold,
                    self._culprit(),
                )

    def _culprit(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        innermost = frame
        while frame is not None:
            owner = self._owners.get(frame.f_code)
            if owner is not None:
                return f"plugin {owner[0]!r} at point {owner[1]!r} ({_where(frame)})"
            frame = frame.f_back
        return f"code that is not a plugin's implementation ({_where(innermost)})"


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "no stack"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
