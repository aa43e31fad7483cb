"""Group commit: writes that arrive together share one transaction, and so one commit.

With ``synchronous = full`` every SQLite commit is an fsync, and one
connection commits one transaction at a time: a hundred sessions whose
turns each need two commits would queue on the disk. :class:`GroupCommit`
gathers the writes made while the event loop goes once round (turns of
different sessions reaching accept or finish together), waiting at most
``wait`` seconds more, and hands them to the engine as one batch: one
transaction, each write in a savepoint of its own, one fsync.

What it never does: answer a write before its batch committed. Each
caller's result (or error) is delivered only after the commit returned, so
an acknowledged turn is a durable one; a commit that fails fails every
write of the batch, and a write that raises is rolled back to its savepoint
alone, the others going on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from .tx import Tx

T = TypeVar("T")

#: A write: a job run in the batch's transaction.
Job = Callable[[Tx], Any]
#: What a batch gives back per job, in order: ``(True, result)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]
#: The writes of one batch, each with the future its caller awaits.
Batch = list[tuple[Job, "asyncio.Future[Any]"]]


class GroupCommit:
    """Batches one store's writes; ``run`` commits a batch and returns each job's outcome.

    A batch starts on the event loop's next turn, when every write already
    under way has been made (``wait`` seconds later if ``wait`` is set), on
    the loop itself or, given an ``executor``, on the store's thread; while
    one runs there, the next gathers. A lone write is thus delayed by
    ``wait`` at most (by one turn of the loop with ``wait = 0``).

    On the loop with ``wait = 0``, the first write of a batch leads it: it
    yields once, then runs the batch in its own task and returns its own
    outcome at once, so that a lone write costs one turn of the loop, not
    two. The others are answered as usual. Otherwise a callback starts the
    batch (no task of its own).
    """

    def __init__(
        self, run: Callable[[Sequence[Job]], list[Outcome]], executor: Executor | None, wait: float
    ) -> None:
        self._run = run
        self._executor = executor
        self._wait = wait
        self._queue: Batch = []
        self._busy = False  # a batch is scheduled or running
        self._drained: asyncio.Future[None] | None = None

    async def write(self, job: Callable[[Tx], T]) -> T:
        """Run ``job`` in the next batch; its result once that batch committed.

        A caller cancelled meanwhile does not take its write back: the job
        runs (and commits) with its batch, as a call cancelled while its
        transaction runs always did.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        if self._busy:
            return await future
        if self._executor is not None or self._wait:
            self._schedule()
            return await future
        self._busy = True  # this write leads the batch
        try:
            await asyncio.sleep(0)  # the writes made meanwhile join it
        except asyncio.CancelledError:
            future.cancel()  # nobody waits for this answer; the write itself goes ahead
            raise
        finally:
            self._start()
        return future.result()

    async def idle(self) -> None:
        """Wait until every write made so far has been committed (or has failed)."""
        if self._busy:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    def _schedule(self) -> None:
        self._busy = True
        loop = asyncio.get_running_loop()
        if self._wait:
            loop.call_later(self._wait, self._start)
        else:
            loop.call_soon(self._start)

    def _start(self) -> None:
        batch, self._queue = self._queue, []
        jobs = [job for job, _ in batch]
        if self._executor is None:
            self._deliver(batch, self._outcomes(jobs))
            return
        running = asyncio.get_running_loop().run_in_executor(self._executor, self._outcomes, jobs)
        running.add_done_callback(lambda done: self._deliver(batch, done.result()))

    def _outcomes(self, jobs: Sequence[Job]) -> list[Outcome]:
        try:
            return self._run(jobs)
        except Exception as exc:  # the commit failed: no write of the batch happened
            return [(False, exc)] * len(jobs)

    def _deliver(self, batch: Batch, outcomes: list[Outcome]) -> None:
        """Answer each write of a committed (or failed) batch; start the next one."""
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if self._queue:
            self._schedule()
            return
        self._busy = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
