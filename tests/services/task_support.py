"""What the task service's tests share: a clock they set by hand, and plugins that watch or steer runs.

Only time is controlled: the service, the agent, the store and every point
are real. A test moves the clock, then calls ``service.run_due()`` — the
step the serve loop repeats every ``poll`` seconds — and looks at the runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from turnkit_hookspecs import (
    Deny,
    ForkOptions,
    Message,
    Prompt,
    SessionExtensionContext,
    TurnInfo,
    hookimpl,
)
from turnkit_services.task import TaskInfo, TaskRun


def utc(text: str) -> datetime:
    """``"2024-01-01T00:05:00"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    """A clock standing still until a test sets it: ``clock.set("2024-01-01T00:05:00")``."""

    def __init__(self, start: str) -> None:
        self.now = utc(start)

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = utc(text)


def is_run(message: Message) -> bool:
    """Whether ``message`` is the instructions of a task run."""
    return "task" in message.metadata


class TurnSpy:
    """Records the turns of task runs as ``turn_authorize`` and ``turn_completed`` see them."""

    def __init__(self) -> None:
        self.authorized: list[tuple[TurnInfo, Message]] = []
        self.completed: list[tuple[TurnInfo, Message]] = []

    @hookimpl
    def turn_authorize(self, turn: TurnInfo, message: Message) -> None:
        if is_run(message):
            self.authorized.append((turn, message))

    @hookimpl
    def turn_completed(self, turn: TurnInfo, message: Message, reply: Message) -> None:
        if is_run(message):
            self.completed.append((turn, reply))


class FinishedSpy:
    """Records every ``task_finished``: (task, run, reply)."""

    def __init__(self) -> None:
        self.calls: list[tuple[TaskInfo, TaskRun, Message | None]] = []

    @hookimpl
    def task_finished(self, task: TaskInfo, run: TaskRun, reply: Message | None) -> None:
        self.calls.append((task, run, reply))


class Gate:
    """``task_authorize`` refusing the tasks named in ``closed``; records what it was asked."""

    def __init__(self, *closed: str) -> None:
        self.closed = set(closed)
        self.asked: list[tuple[TaskInfo, TaskRun]] = []

    @hookimpl
    def task_authorize(self, task: TaskInfo, run: TaskRun) -> Deny | None:
        self.asked.append((task, run))
        return Deny(f"{task.name} is closed today") if task.name in self.closed else None


class TurnGate:
    """Refuses the run turns of task ``refused`` (``turn_authorize``); fails those of ``broken``."""

    def __init__(self, refused: str, broken: str) -> None:
        self.refused = refused
        self.broken = broken

    @hookimpl
    def turn_authorize(self, message: Message) -> Deny | None:
        if message.metadata.get("task", {}).get("name") == self.refused:
            return Deny("no turns for this task")
        return None

    @hookimpl(tryfirst=True)
    def turn_reply(self, prompt: Prompt) -> None:
        if any(m.metadata.get("task", {}).get("name") == self.broken for m in prompt.messages):
            raise RuntimeError("the model is down")


class Delegator:
    """In a task run's ``turn_prompt``: forks a child with a question, waits for it, merges it back."""

    def __init__(self) -> None:
        self.children: list[str] = []
        self.merged: list[Message] = []

    @hookimpl
    async def turn_prompt(self, ctx: SessionExtensionContext, prompt: Prompt) -> None:
        if not is_run(prompt.messages[-1]):
            return
        question = Message.of("user", "What were last week's sales figures?")
        child = await ctx.fork(ForkOptions(reason="look up the figures", initial_message=question))
        self.children.append(child)
        self.merged.append(await ctx.merge(child))
