"""A synchronous facade over :class:`~turnkit.agent.Agent`, for scripts.

The agent runs on an event loop in a background thread, so its effects,
queued turns and inbox keep running between calls, just as in an async
application::

    with SyncAgent("turnkit.toml") as agent:
        print(agent.send("hello").reply.text)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from turnkit_hookspecs import ActionResult, Message, SessionInfo, TurnResult

from .agent import Agent, ConfigSource

T = TypeVar("T")


class SyncAgent:
    """Blocking calls onto an :class:`Agent` running in its own thread."""

    def __init__(self, config: ConfigSource = None, *, agent: Agent | None = None, **options: Any) -> None:
        """Same arguments as :class:`Agent`, or an ``agent`` already made; nothing starts before
        :meth:`start` or ``with``."""
        self.agent = agent if agent is not None else Agent(config, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SyncAgent:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the loop thread and the agent on it."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="turnkit-agent", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            self.call(self.agent.start())
        except BaseException:
            self._shutdown()
            raise

    def stop(self) -> None:
        """Stop the agent, then the loop thread."""
        if self._loop is None:
            return
        try:
            self.call(self.agent.stop())
        finally:
            self._shutdown()

    def send(self, message: str | Message, session_id: str | None = None) -> TurnResult:
        """Run one turn (see :meth:`Agent.send`)."""
        return self.call(self.agent.send(message, session_id))

    def open(self, session_id: str | None = None, kind: str = "chat") -> SessionInfo:
        """Open or create a session."""
        return self.call(self.agent.sessions.open(session_id, kind=kind))

    def history(self, session_id: str) -> list[Message]:
        """Every message of a session."""
        return list(self.call(self.agent.sessions.history(session_id)))

    def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Call ``service.action``."""
        return self.call(self.agent.invoke(action, payload))

    def call(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the agent's loop and return its result (or raise its error)."""
        if self._loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("the agent is not started: use 'with SyncAgent(...)' or call start()")
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._loop).result()

    def _shutdown(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join()
            loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    """A coroutine of any awaitable, as ``run_coroutine_threadsafe`` wants one."""
    return await awaitable
