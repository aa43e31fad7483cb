"""The task service's records in the agent's store: tasks, and the runs of each.

Collections of ``context.storage("task")``: ``tasks`` (key
``<agent id>/<task name>``) and ``runs`` (key ``<agent id>/<run id>``).
Each value carries ``agent_id``, so that agents sharing one store each see,
schedule and run only their own tasks. Every change is a compare-and-set
(``expect``), retried on a conflict, so that two processes sharing the
store (``turnkit serve`` and a ``turnkit task …`` command) never overwrite
each other's changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from turnkit_hookspecs import Storage, StorageConflict, structure, unstructure

from .model import FINAL, TaskRecord, TaskRun

TASKS = "tasks"
RUNS = "runs"
#: The field naming the agent a record belongs to.
AGENT = "agent_id"

T = TypeVar("T")


class TaskStore:
    """Typed access to one agent's records in the ``tasks`` and ``runs`` collections."""

    def __init__(self, storage: Storage, agent_id: str) -> None:
        self.storage = storage
        self.agent_id = agent_id

    def _key(self, name: str) -> str:
        return f"{self.agent_id}/{name}"

    def _value(self, item: object) -> dict[str, Any]:
        return {**unstructure(item), AGENT: self.agent_id}

    # ------------------------------------------------------------------ tasks

    async def task(self, name: str) -> TaskRecord | None:
        """The stored task ``name``, or ``None``."""
        stored = await self.storage.get(TASKS, self._key(name))
        return _read(stored.value, TaskRecord) if stored is not None else None

    async def tasks(self) -> list[TaskRecord]:
        """Every task of this agent, by name."""
        found = await self.storage.list(TASKS, where={AGENT: self.agent_id})
        return sorted((_read(r.value, TaskRecord) for r in found), key=lambda record: record.spec.name)

    async def add(self, record: TaskRecord) -> bool:
        """Store a new task; ``False`` when one of that name exists already."""
        try:
            await self.storage.put(TASKS, self._key(record.spec.name), self._value(record), expect=0)
        except StorageConflict:
            return False
        return True

    async def change(self, name: str, change: Callable[[TaskRecord], TaskRecord]) -> TaskRecord | None:
        """Apply ``change`` to the stored task (compare-and-set, retried); ``None`` if there is none."""
        return await self._change(TASKS, name, TaskRecord, change)

    async def remove(self, name: str) -> bool:
        """Delete a task and its run records; ``False`` when there was no such task."""
        for run in await self.runs(name):
            await self.storage.delete(RUNS, self._key(run.run_id))
        return await self.storage.delete(TASKS, self._key(name))

    # ------------------------------------------------------------------ runs

    async def claim(self, run: TaskRun) -> bool:
        """Store a new run record; ``False`` when that run id is taken."""
        try:
            await self.storage.put(RUNS, self._key(run.run_id), self._value(run), expect=0)
        except StorageConflict:
            return False
        return True

    async def run(self, run_id: str) -> TaskRun | None:
        """The run record ``run_id``, or ``None``."""
        stored = await self.storage.get(RUNS, self._key(run_id))
        return _read(stored.value, TaskRun) if stored is not None else None

    async def change_run(self, run_id: str, change: Callable[[TaskRun], TaskRun]) -> TaskRun | None:
        """Apply ``change`` to a run record (compare-and-set, retried); ``None`` if there is none."""
        return await self._change(RUNS, run_id, TaskRun, change)

    async def runs(self, task: str | None = None) -> list[TaskRun]:
        """The kept runs (of ``task``, or of every task), oldest first."""
        where = {AGENT: self.agent_id} if task is None else {AGENT: self.agent_id, "task": task}
        found = [_read(r.value, TaskRun) for r in await self.storage.list(RUNS, where=where)]
        return sorted(found, key=lambda run: (run.scheduled, run.run_id))

    async def prune(self, task: str, keep: int) -> None:
        """Delete the oldest finished run records of ``task`` beyond the newest ``keep``."""
        runs = await self.runs(task)
        for run in runs[: max(0, len(runs) - keep)]:
            if run.status in FINAL:
                await self.storage.delete(RUNS, self._key(run.run_id))

    # ------------------------------------------------------------------ compare-and-set

    async def _change(self, collection: str, name: str, cls: type[T], change: Callable[[T], T]) -> T | None:
        key = self._key(name)
        while True:
            stored = await self.storage.get(collection, key)
            if stored is None:
                return None
            old = _read(stored.value, cls)
            new = change(old)
            if new == old:
                return old
            try:
                await self.storage.put(collection, key, self._value(new), expect=stored.version)
            except StorageConflict:
                continue  # changed by someone else meanwhile: apply the change to their version
            return new


def _read(value: Mapping[str, Any], cls: type[T]) -> T:
    return structure({k: v for k, v in value.items() if k != AGENT}, cls)
