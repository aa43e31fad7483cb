"""The scene's agent serving HTTP on a thread of its own, so that blocking code (Selenium, a
plain HTTP client) can talk to it from the test's thread.

``SceneServer`` runs :func:`~tests.chat.http_server.serving_http` with the scene
on a fresh event loop in a daemon thread, plays the scene once it listens,
and stops the agent (as SIGTERM does) when closed::

    with SceneServer(tmp_path, token="s3cret") as server:
        server.url, server.ids["main"]
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from turnkit.agent import Agent

from tests.chat.http_server import serving_http
from tests.console.scene import play, scene_options

T = TypeVar("T")
#: How long the agent may take to start and play the scene.
START_TIMEOUT = 60.0


class SceneServer:
    """The scene, served; :attr:`url` is the HTTP channel's address, :attr:`ids` the scene's sessions."""

    def __init__(self, directory: Path, token: str | None = None) -> None:
        self.directory = directory
        self.token = token
        self.url = ""
        self.ids: dict[str, str] = {}
        self.agent: Agent | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scene server", daemon=True)

    def __enter__(self) -> SceneServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise AssertionError(f"the scene's agent did not start within {START_TIMEOUT}s")
        if self._failure is not None:
            raise AssertionError("the scene's agent failed to start") from self._failure
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the agent's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to __enter__, which is waiting
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        http = {"token": self.token} if self.token else {}
        async with serving_http(self.directory, http=http, **scene_options()) as served:
            self.agent = served.agent
            self.ids = await play(served.agent)
            self.url = served.url
            self._ready.set()
            await self._stop.wait()
