"""The agent's side of recognition: worker processes (:mod:`turnkit_asr.worker`) and who may use them.

A :class:`Recognizer` keeps up to ``workers`` worker processes, each driven by
a thread of its own executor, so a voice message waits in that executor's
queue — never in a thread the agent's loop or store needs — and the loop
only awaits a future. Loading the model costs a worker about half a second,
once (the process then holds about 110 MB); it then decodes message after
message.

Each agent's plugin owns its recognizer and closes it when the agent stops
(``ASRPlugin.close``), so its workers live as long as the agent and no
longer, however many agents a process makes and stops (a test suite makes
one per test). A worker whose agent's process dies ends too: its input
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import worker

WORKER_SCRIPT = Path(worker.__file__)
#: How long a worker may take to exit once its input is closed, before it is killed.
EXIT_GRACE_SECONDS = 5.0


class RecognizerError(RuntimeError):
    """The recognizer failed — not the audio: the step fails, as a pipeline's failure does."""


class WorkerProcess:
    """One running worker; used by one thread at a time."""

    def __init__(self, phrases: Sequence[str]) -> None:
        """Start the worker and wait until its decoder is loaded (raises :class:`RecognizerError`)."""
        try:
            # -P: the script's folder (this package's) is not put on the worker's import path
            self.process = subprocess.Popen(
                [sys.executable, "-P", str(WORKER_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        except OSError as exc:
            raise RecognizerError(f"the recognizer process could not be started: {exc}") from exc
        try:
            answer = self._ask(json.dumps({"phrases": list(phrases)}).encode())
        except RecognizerError:
            self.close()
            raise
        if "error" in answer:
            self.close()
            raise RecognizerError(f"the recognizer could not start: {answer['error']}")

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def transcribe(self, pcm: bytes) -> str:
        """The words heard in 16 kHz mono 16-bit ``pcm``."""
        answer = self._ask(pcm)
        if "error" in answer:
            raise RecognizerError(f"the recognizer failed: {answer['error']}")
        return str(answer["text"])

    def _ask(self, payload: bytes) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            worker.write_frame(self.process.stdin, payload)
            answer = worker.read_frame(self.process.stdout)
        except OSError:  # the pipe broke under a write: the process is gone
            answer = None
        if answer is None:
            raise RecognizerError(f"the recognizer process exited (status {self.process.wait()})")
        decoded: dict[str, Any] = json.loads(answer)
        return decoded

    def close(self) -> None:
        """End the process: close its input, then kill it if it does not exit in time."""
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a request left half-written to a dead process
                    stream.close()
        try:
            self.process.wait(EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Recognizer:
    """Up to ``workers`` worker processes for one set of ``phrases``, started when first needed.

    ``async with Recognizer(phrases, workers) as recognizer:`` ends them on leaving.
    """

    def __init__(self, phrases: Sequence[str], workers: int) -> None:
        self.phrases = tuple(phrases)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="turnkit-asr")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._processes: list[WorkerProcess] = []

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        with self._lock:
            return [p.process.pid for p in self._processes if p.alive]

    async def start(self) -> None:
        """Start a worker now, so that a wrong phrase stops the agent's start rather than a turn."""
        await asyncio.get_running_loop().run_in_executor(self._threads, self._worker)

    async def transcribe(self, pcm: bytes) -> str:
        """The words heard in 16 kHz mono 16-bit ``pcm``; ``""`` if none."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._transcribe, pcm)

    def _transcribe(self, pcm: bytes) -> str:
        process = self._worker()
        try:
            return process.transcribe(pcm)
        finally:
            if not process.alive:  # the next message gets a fresh worker
                self._forget(process)

    def _worker(self) -> WorkerProcess:
        """This thread's worker, started if it has none or its last one died."""
        process: WorkerProcess | None = getattr(self._local, "process", None)
        if process is not None and not process.alive:  # killed while idle (out of memory …)
            self._forget(process)
            process = None
        if process is None:
            process = WorkerProcess(self.phrases)
            self._local.process = process
            with self._lock:
                self._processes.append(process)
        return process

    def _forget(self, process: WorkerProcess) -> None:
        self._local.process = None
        with self._lock:
            self._processes.remove(process)
        process.close()

    def close(self) -> None:
        """Stop the threads and end every worker (waiting for a recognition under way)."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            processes, self._processes = self._processes, []
        for process in processes:
            process.close()

    async def aclose(self) -> None:
        """:meth:`close` on a thread of its own: waiting for the workers never stalls the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Recognizer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
