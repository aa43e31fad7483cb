"""Threads for plugins' blocking calls, where a hang costs one thread, not the pool.

A ``ThreadPoolExecutor`` cannot give up on a running call: a plugin stuck in
a ``def`` implementation holds its worker for ever, and once every worker is
stuck, every other plugin's calls wait behind them. Here a call that ran out
of time is *abandoned*: its thread is left to finish on its own (and ends
when the call returns) while a fresh thread takes its place. So that a
plugin hanging on every call cannot make threads without bound, a plugin
with ``hung_limit`` abandoned calls still running is refused another thread
(:class:`~turnkit.errors.PluginHung`) until one of them returns.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from time import perf_counter
from typing import Any

import attrs

from .errors import PluginHung

log = logging.getLogger("turnkit.dispatch")

#: What a call's future holds: the implementation's return value and how long it ran (seconds).
Done = tuple[Any, float]


@attrs.define(eq=False)
class _Job:
    plugin: str
    function: Callable[..., Any]
    args: Sequence[Any]
    context: contextvars.Context
    future: Future[Done] = attrs.field(factory=Future)


@attrs.define(eq=False)
class _Thread:
    """A worker thread's state, guarded by the pool's lock."""

    abandoned: bool = False
    job: _Job | None = None


class Workers:
    """At most ``size`` threads (started as calls need them) running plugins' ``def`` calls."""

    def __init__(self, size: int, hung_limit: int, name: str) -> None:
        self._size = size
        self._hung_limit = hung_limit
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[_Thread] = []
        self._idle = 0
        self._waiting = 0
        self._hung: Counter[str] = Counter()
        self._closed = False

    def submit(self, plugin: str, function: Callable[..., Any], args: Sequence[Any]) -> Future[Done]:
        """Run ``function(*args)`` on a thread, in the caller's context variables."""
        job = _Job(plugin, function, args, contextvars.copy_context())
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} threads are shut down")
            hung = self._hung[plugin]
            if hung >= self._hung_limit:
                raise PluginHung(plugin, hung)
            self._waiting += 1
            if self._waiting > self._idle and len(self._threads) < self._size:
                self._spawn()
        self._jobs.put(job)
        return job.future

    def abandon(self, future: Future[Done]) -> None:
        """Give up on the call behind ``future``: its thread no longer counts, a new one replaces it."""
        with self._lock:
            for state in self._threads:
                if state.job is not None and state.job.future is future:
                    state.abandoned = True
                    self._threads.remove(state)
                    self._hung[state.job.plugin] += 1
                    if not self._closed and self._waiting > self._idle:
                        self._spawn()
                    return

    def hung(self) -> dict[str, int]:
        """Plugins with calls still running on abandoned threads, and how many."""
        with self._lock:
            return {plugin: count for plugin, count in self._hung.items() if count}

    def close(self) -> None:
        """Let idle threads end; a hung one ends when its call returns (they are daemons)."""
        with self._lock:
            self._closed = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)

    def _spawn(self) -> None:
        state = _Thread()
        self._threads.append(state)
        name = f"turnkit-{self._name}-{len(self._threads)}"
        threading.Thread(target=self._work, args=(state,), name=name, daemon=True).start()

    def _work(self, state: _Thread) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    return
                self._waiting -= 1
                state.job = job
            if job.future.set_running_or_notify_cancel():
                started = perf_counter()
                try:
                    result = job.context.run(job.function, *job.args)
                except BaseException as exc:  # handed to the caller, who applies the kind's rule
                    job.future.set_exception(exc)
                else:
                    job.future.set_result((result, perf_counter() - started))
            with self._lock:
                state.job = None
                if state.abandoned:
                    self._hung[job.plugin] -= 1
                    log.info("an abandoned call of plugin %r returned at last", job.plugin)
                    return
