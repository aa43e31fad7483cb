"""The task service end to end: real agents on a SQLite file, a clock the tests set, real restarts.

The scheduler is driven step by step with ``service.run_due()`` (what the
serve loop repeats every ``poll`` seconds) under a :class:`Clock` the test
moves; one test runs the real serve loop on the real clock, one the real
``turnkit serve``. Restarts in the middle of a run are real: a subprocess
agent (tests/services/task_crash_agent.py) is SIGKILLed while a run is
claimed or its turn is running, and a new agent takes over the same file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit.errors import ConfigError
from turnkit_hookspecs import ActionResult
from turnkit_services.task import TaskInfo, TaskRun, TaskService, TaskStatus

from tests.support.agents import eventually, running_agent, texts
from tests.support.dists import run_turnkit, subprocess_env, turnkit_command

from .task_support import Clock, Delegator, FinishedSpy, Gate, TurnGate, TurnSpy

CRASH_AGENT = Path(__file__).with_name("task_crash_agent.py")
RUN_ID = re.compile(r"^task-[\w-]+-\d{8}T\d{6}Z$")
EVERY_5_MINUTES = "*/5 * * * *"


@asynccontextmanager
async def task_agent(
    tmp_path: Path, clock: Clock | None = None, **options: Any
) -> AsyncIterator[tuple[Agent, TaskService]]:
    """A started agent with a task service on ``clock`` (the real clock if ``None``)."""
    service = TaskService(clock=clock)
    async with running_agent(tmp_path, services=[service], **options) as agent:
        yield agent, service


async def call(agent: Agent, action: str, **payload: Any) -> Any:
    """``task.<action>`` with ``payload``; its value (fails the test if the action failed)."""
    result = await agent.invoke(f"task.{action}", payload)
    assert result.ok, result.error
    return result.value


async def refused(agent: Agent, action: str, **payload: Any) -> str:
    """``task.<action>`` that must fail; its error."""
    result: ActionResult = await agent.invoke(f"task.{action}", payload)
    assert not result.ok, result
    assert result.error is not None
    return result.error


async def runs_of(agent: Agent, name: str) -> list[TaskRun]:
    """The runs of task ``name``, oldest first."""
    runs: list[TaskRun] = await call(agent, "runs", name=name, limit=1000)
    return runs[::-1]


async def user_messages(agent: Agent, session_id: str) -> list[str]:
    return [text for role, text in texts(await agent.context.session.history(session_id)) if role == "user"]


# ------------------------------------------------------------------ the schedule


async def test_a_cron_task_runs_once_per_due_time_as_the_clock_moves(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:30")
    async with task_agent(tmp_path, clock) as (agent, service):
        task: TaskInfo = await call(
            agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Write the report."
        )
        assert (task.trigger, task.next_run, task.source) == ("cron", "2024-01-01T00:05:00Z", "action")
        assert await service.run_due() == []

        clock.set("2024-01-01T00:04:59")
        assert await service.run_due() == [], "not due yet"
        clock.set("2024-01-01T00:05:00")
        (first,) = await service.run_due()
        assert await service.run_due() == [], "the same due time never runs twice"
        clock.set("2024-01-01T00:11:00")
        (second,) = await service.run_due()

        assert [run.run_id for run in (first, second)] == [
            "task-report-20240101T000500Z",
            "task-report-20240101T001000Z",
        ]
        for run in (first, second):
            assert (run.status, run.trigger, run.reply) == ("completed", "schedule", "Write the report.")
            session = await agent.context.session.get(run.session_id)
            assert session is not None and session.kind == "task"
            assert run.session_id == run.run_id
            assert await user_messages(agent, run.session_id) == ["Write the report."]
        status: TaskStatus = await call(agent, "status", name="report")
        assert status.task.next_run == "2024-01-01T00:15:00Z"
        assert (status.last_run, status.runs, status.unfinished) == (second, 2, 0)


async def test_start_schedules_nothing_and_a_manual_run_works_without_serving(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, _):
        await call(agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.")
    clock.set("2024-01-01T01:00:00")
    async with task_agent(tmp_path, clock) as (agent, _):
        assert await runs_of(agent, "report") == [], "starting the agent runs nothing"
        first: TaskRun = await call(agent, "run", name="report")
        second: TaskRun = await call(agent, "run", name="report")
        assert [first.run_id, second.run_id] == [
            "task-report-20240101T010000Z-manual",
            "task-report-20240101T010000Z-manual-2",
        ]
        assert (first.trigger, first.status, first.reply) == ("manual", "completed", "Report.")
        status: TaskStatus = await call(agent, "status", name="report")
        assert status.task.next_run == "2024-01-01T00:05:00Z", "a manual run leaves the schedule alone"


async def test_the_serve_loop_runs_due_tasks_on_the_real_clock(tmp_path: Path) -> None:
    async with task_agent(tmp_path, service={"task": {"poll": 0.05}}) as (agent, _):
        await call(agent, "create", name="tick", cron="* * * * * *", instructions="Tick.")
        serving = asyncio.create_task(agent.serve())

        async def ran() -> bool:
            return any(run.status == "completed" for run in await runs_of(agent, "tick"))

        try:
            await eventually(ran, timeout=10)
        finally:
            agent.request_stop()
            await serving
        run = (await runs_of(agent, "tick"))[0]
        assert RUN_ID.match(run.run_id) and run.reply == "Tick."


async def test_two_schedulers_sharing_a_store_run_each_due_time_once(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (one, first), task_agent(tmp_path, clock) as (two, second):
        await call(one, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.")
        for now in ("2024-01-01T00:05:00", "2024-01-01T00:10:00", "2024-01-01T00:15:00"):
            clock.set(now)
            await asyncio.gather(first.run_due(), second.run_due())
        runs = await runs_of(two, "report")
    assert [run.scheduled for run in runs] == [
        "2024-01-01T00:05:00Z",
        "2024-01-01T00:10:00Z",
        "2024-01-01T00:15:00Z",
    ]
    assert all(run.status == "completed" for run in runs)


@pytest.mark.parametrize(
    ("policy", "now", "scheduled", "skipped"),
    [
        ("once", "2024-01-01T00:17:00", ["00:15"], 2),
        ("all", "2024-01-01T00:17:00", ["00:05", "00:10", "00:15"], 0),
        ("skip", "2024-01-01T00:17:00", [], 3),
        ("skip", "2024-01-01T00:15:30", ["00:15"], 2),  # the latest is within grace: on time
    ],
)
async def test_due_times_missed_while_the_host_was_down_follow_the_policy(
    tmp_path: Path, policy: str, now: str, scheduled: list[str], skipped: int
) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, _):
        await call(
            agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.", missed=policy
        )
    clock.set(now)  # down across 00:05, 00:10 and 00:15
    async with task_agent(tmp_path, clock) as (agent, service):
        await service.run_due()
        runs = await runs_of(agent, "report")
        status: TaskStatus = await call(agent, "status", name="report")
    assert [run.scheduled[11:16] for run in runs] == scheduled
    assert all(run.status == "completed" for run in runs)
    if policy == "once":
        assert runs[0].skipped == 2, "the run says how many due times it stands for"
    assert (status.task.missed, status.task.skipped) == (policy, skipped)
    assert status.task.next_run == "2024-01-01T00:20:00Z"


async def test_the_missed_runs_policy_defaults_to_the_services_setting(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    settings = {"task": {"missed": "all"}}
    async with task_agent(tmp_path, clock, service=settings) as (agent, service):
        task: TaskInfo = await call(agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="R.")
        assert task.missed == "all"
        clock.set("2024-01-01T00:12:00")
        assert len(await service.run_due()) == 2
    async with task_agent(tmp_path, clock) as (agent, _):
        task = (await call(agent, "list"))[0]
        assert task.missed == "once", "without the setting, the built-in default applies"


# ------------------------------------------------------------------ restarts in the middle of a run


def crash_mid_run(tmp_path: Path, now: str, step: str) -> None:
    """Run the scheduler in a subprocess at ``now`` until the run blocks at ``step``, then SIGKILL it."""
    marker = tmp_path / "blocked"
    argv = [sys.executable, str(CRASH_AGENT), str(tmp_path / "t.db"), now + "+00:00", step, str(marker)]
    process = subprocess.Popen(
        argv, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"task_crash_agent.py exited {process.returncode} before blocking\n{out}{err}")
            assert time.monotonic() < deadline, "task_crash_agent.py did not block within 30s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_a_crash_after_the_turn_was_accepted_neither_loses_nor_doubles_the_run(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, _):
        await call(agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.")

    crash_mid_run(tmp_path, "2024-01-01T00:05:00", "turn")

    clock.set("2024-01-01T00:05:20")
    finished = FinishedSpy()
    async with task_agent(tmp_path, clock, plugins={"finished": finished}) as (agent, service):
        (crashed,) = await runs_of(agent, "report")
        # the start re-runs the interrupted turn at once: it may already have ended and been recorded
        assert (crashed.run_id, crashed.status) in {
            ("task-report-20240101T000500Z", "running"),
            ("task-report-20240101T000500Z", "completed"),
        }
        assert (await call(agent, "status", name="report")).task.next_run == "2024-01-01T00:05:00Z"

        async def recorded() -> bool:  # the restart re-runs the interrupted turn; its end is recorded
            return (await runs_of(agent, "report"))[0].status == "completed"

        await eventually(recorded)
        (found,) = await service.run_due()
        assert found.run_id == crashed.run_id, "the due time whose turn was accepted is only advanced"
        assert (await call(agent, "status", name="report")).task.next_run == "2024-01-01T00:10:00Z"

        clock.set("2024-01-01T00:10:00")
        await service.run_due()
        runs = await runs_of(agent, "report")
        await agent.dispatcher.drain()
        assert [(run.scheduled[11:16], run.status) for run in runs] == [
            ("00:05", "completed"),
            ("00:10", "completed"),
        ]
        assert await user_messages(agent, crashed.session_id) == ["Report."], "one turn for the due time"
        assert [run.run_id for _, run, _ in finished.calls] == [run.run_id for run in runs]


async def test_a_crash_after_the_claim_leaves_the_run_to_the_lease_then_runs_it_once(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, _):
        await call(agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.")

    crash_mid_run(tmp_path, "2024-01-01T00:05:00", "authorize")

    clock.set("2024-01-01T00:05:30")
    async with task_agent(tmp_path, clock) as (agent, service):
        assert await service.run_due() == [], "claimed 30 s ago by another process: left to it"
        (claimed,) = await runs_of(agent, "report")
        assert claimed.status == "claimed"
        assert await agent.context.session.get(claimed.session_id) is None

        clock.set("2024-01-01T00:06:01")  # the 60 s claim lease has run out: its owner is gone
        (run,) = await service.run_due()
        assert (run.run_id, run.status) == (claimed.run_id, "completed")
        assert run.owner == service.owner
        assert await user_messages(agent, run.session_id) == ["Report."]
        assert await service.run_due() == []
        assert len(await runs_of(agent, "report")) == 1


# ------------------------------------------------------------------ a run is a turn like any other


async def test_a_run_is_a_task_session_turn_through_the_turn_points(tmp_path: Path) -> None:
    spy, finished = TurnSpy(), FinishedSpy()
    plugins = {"spy": spy, "finished": finished}
    async with task_agent(tmp_path, Clock("2024-03-01T08:00:00"), plugins=plugins) as (agent, _):
        await call(agent, "create", name="digest", instructions="Summarise the news.")
        run: TaskRun = await call(agent, "run", name="digest")
        await agent.dispatcher.drain()
        (authorized_turn, message), (completed_turn, reply) = spy.authorized[0], spy.completed[0]
        assert len(spy.authorized) == len(spy.completed) == 1
        assert authorized_turn.session_id == completed_turn.session_id == run.session_id
        assert (completed_turn.initiator, completed_turn.initiator_id) == ("system", "task:digest")
        assert (message.author, message.metadata["task"]["run"]) == ("task:digest", run.run_id)
        assert reply.text == run.reply == "Summarise the news."
        assert (run.status, run.turn_id, run.finished) == ("completed", completed_turn.turn_id, run.started)

        ((task, seen, stored_reply),) = finished.calls
        assert (task.name, seen, stored_reply) == ("digest", run, reply)
        assert await call(agent, "runs", name="digest") == [run]
        assert (await call(agent, "status", name="digest")).last_run == run
        session = await agent.context.session.get(run.session_id)
        assert session is not None and session.kind == "task"
        assert session.metadata == {"task": "digest", "run": run.run_id, "agent_id": "default"}


async def test_task_authorize_denies_a_run_which_is_recorded_and_never_runs(tmp_path: Path) -> None:
    gate, spy, finished = Gate("secret"), TurnSpy(), FinishedSpy()
    clock = Clock("2024-01-01T00:00:00")
    plugins = {"gate": gate, "spy": spy, "finished": finished}
    async with task_agent(tmp_path, clock, plugins=plugins) as (agent, service):
        await call(agent, "create", name="secret", cron=EVERY_5_MINUTES, instructions="Leak it.")
        await call(agent, "create", name="open", instructions="Fine.")
        denied: TaskRun = await call(agent, "run", name="secret")
        clock.set("2024-01-01T00:05:00")
        (scheduled,) = await service.run_due()
        allowed: TaskRun = await call(agent, "run", name="open")
        await agent.dispatcher.drain()

        for run in (denied, scheduled):
            assert (run.status, run.error, run.denied_by) == ("denied", "secret is closed today", "gate")
            assert run.started is None and run.reply is None
            assert await agent.context.session.get(run.session_id) is None, "no session, no turn"
        assert (await call(agent, "status", name="secret")).task.next_run == "2024-01-01T00:10:00Z"
        assert allowed.status == "completed"
        assert [message.author for _, message in spy.authorized] == ["task:open"]
        assert [(run.task, run.status, reply) for _, run, reply in finished.calls][:2] == [
            ("secret", "denied", None),
            ("secret", "denied", None),
        ]
        asked = [(task.name, run.status, run.trigger) for task, run in gate.asked]
        assert asked == [
            ("secret", "claimed", "manual"),
            ("secret", "claimed", "schedule"),
            ("open", "claimed", "manual"),
        ]


async def test_a_refused_or_failed_turn_is_recorded_as_the_runs_outcome(tmp_path: Path) -> None:
    finished = FinishedSpy()
    plugins = {"turns": TurnGate(refused="refused", broken="broken"), "finished": finished}
    async with task_agent(tmp_path, plugins=plugins) as (agent, _):
        await call(agent, "create", name="refused", instructions="Try.")
        await call(agent, "create", name="broken", instructions="Try.")
        refused_run: TaskRun = await call(agent, "run", name="refused")
        broken_run: TaskRun = await call(agent, "run", name="broken")
        await agent.dispatcher.drain()
    assert (refused_run.status, refused_run.error, refused_run.denied_by) == (
        "denied",
        "no turns for this task",
        "turns",
    )
    assert broken_run.status == "failed"
    assert broken_run.error is not None and "the model is down" in broken_run.error
    assert sorted((run.task, run.status) for _, run, _ in finished.calls) == [
        ("broken", "failed"),
        ("refused", "denied"),
    ]


async def test_a_task_with_a_target_session_runs_its_turns_there(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, service):
        await agent.send("Hello there.", "chat-1")
        await call(
            agent,
            "create",
            name="remind",
            cron=EVERY_5_MINUTES,
            session="chat-1",
            instructions="Drink water.",
        )
        manual: TaskRun = await call(agent, "run", name="remind")
        clock.set("2024-01-01T00:05:00")
        (scheduled,) = await service.run_due()
        history = texts(await agent.context.session.history("chat-1"))
        assert (manual.session_id, scheduled.session_id) == ("chat-1", "chat-1")
        assert scheduled.run_id == "task-remind-20240101T000500Z"
        assert await agent.context.session.get(scheduled.run_id) is None, "no session of its own"
        session = await agent.context.session.get("chat-1")
    assert session is not None and session.kind == "chat"
    assert history == [
        ("user", "Hello there."),
        ("assistant", "Hello there."),
        ("user", "Drink water."),
        ("assistant", "Drink water."),
        ("user", "Drink water."),
        ("assistant", "Drink water."),
    ]


async def test_a_run_that_forks_and_merges_a_child_ends_with_its_summary(tmp_path: Path) -> None:
    delegator = Delegator()
    async with task_agent(tmp_path, plugins={"delegator": delegator}) as (agent, _):
        await call(agent, "create", name="sales", instructions="Report the sales.")
        run: TaskRun = await call(agent, "run", name="sales")
        history = await agent.context.session.history(run.session_id)
        (child_id,) = delegator.children
        child = await agent.context.session.get(child_id)
        child_history = texts(await agent.context.session.history(child_id))
    assert run.status == "completed"
    assert child is not None and (child.parent_session_id, child.status) == (run.session_id, "merged")
    assert child_history[-2:] == [
        ("user", "What were last week's sales figures?"),
        ("assistant", "What were last week's sales figures?"),
    ]
    merged = [message for message in history if message.metadata.get("merged_from") == child_id]
    assert [m.text for m in merged] == [m.text for m in delegator.merged]
    assert merged[0].text.startswith(f"Result of child session {child_id}: ")
    assert "sales figures" in merged[0].text


# ------------------------------------------------------------------ tasks from the configuration


def configured(*tasks: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"task": {"tasks": list(tasks), **settings}}


DAILY = {"name": "daily", "instructions": "Plan the day.", "cron": "0 9 * * *", "timezone": "Europe/Paris"}
BY_HAND = {"name": "by-hand", "instructions": "Tidy up."}


async def test_configured_tasks_are_listed_and_survive_restarts_without_duplicates(tmp_path: Path) -> None:
    clock = Clock("2024-01-15T10:00:00")
    async with task_agent(tmp_path, clock, service=configured(DAILY, BY_HAND)) as (agent, _):
        tasks: list[TaskInfo] = await call(agent, "list")
        assert [(t.name, t.source, t.trigger, t.next_run) for t in tasks] == [
            ("by-hand", "config", "manual", None),
            ("daily", "config", "cron", "2024-01-16T08:00:00Z"),  # 09:00 in Paris, in winter
        ]
        assert "defined in the configuration" in await refused(
            agent, "update", name="daily", cron="0 8 * * *"
        )
        assert "defined in the configuration" in await refused(agent, "delete", name="daily")
        await call(agent, "disable", name="by-hand")

    clock.set("2024-01-15T11:00:00")
    async with task_agent(tmp_path, clock, service=configured(DAILY, BY_HAND)) as (agent, _):
        tasks = await call(agent, "list")
        assert [(t.name, t.enabled, t.next_run) for t in tasks] == [
            ("by-hand", False, None),  # what an action changed stands while the table is unchanged
            ("daily", True, "2024-01-16T08:00:00Z"),
        ]

    changed = {**DAILY, "cron": "30 9 * * *"}
    weekly = {"name": "weekly", "instructions": "Review.", "cron": "0 9 * * 1"}
    async with task_agent(tmp_path, clock, service=configured(changed, weekly)) as (agent, _):
        tasks = await call(agent, "list")
    assert [(t.name, t.cron, t.next_run) for t in tasks] == [
        ("daily", "30 9 * * *", "2024-01-16T08:30:00Z"),
        ("weekly", "0 9 * * 1", "2024-01-22T09:00:00Z"),
    ], "a changed table wins, a removed one is deleted, a new one is added"


async def test_a_bad_configured_task_is_reported_with_its_place_in_the_file(tmp_path: Path) -> None:
    bad = {**DAILY, "cron": "61 9 * * *"}
    async with running_agent(tmp_path, services=[TaskService()], service=configured(BY_HAND, bad)) as agent:
        assert "task" not in agent.services
        error = agent.service_errors["task"]
    assert "[service.task] tasks[1].cron: '61 9 * * *' is not a cron expression" in error

    with pytest.raises(ConfigError, match=r"extra fields found \(crn\) @ \$\.service\.task\.tasks\[0\]"):
        async with running_agent(
            tmp_path, services=[TaskService()], service=configured({**BY_HAND, "crn": "x"})
        ):
            pass
    twice = configured(BY_HAND, BY_HAND)
    async with running_agent(tmp_path, services=[TaskService()], service=twice) as agent:
        assert "tasks[1].name: task 'by-hand' is defined twice" in agent.service_errors["task"]


async def test_agents_sharing_a_store_each_keep_their_own_tasks(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    alpha = {"agent": {"id": "alpha"}, "service": configured(BY_HAND)}
    beta = {"agent": {"id": "beta"}, "service": configured(DAILY)}
    async with (
        task_agent(tmp_path, clock, **alpha) as (one, _),
        task_agent(tmp_path, clock, **beta) as (two, _),
    ):
        assert [t.name for t in await call(one, "list")] == ["by-hand"]
        assert [t.name for t in await call(two, "list")] == ["daily"], "neither deletes the other's tasks"
        await call(one, "create", name="report", instructions="Alpha's report.")
        await call(two, "create", name="report", instructions="Beta's report.")
        mine: TaskRun = await call(one, "run", name="report")
        theirs: TaskRun = await call(two, "run", name="report")
        assert [r.run_id for r in await call(one, "runs")] == [mine.run_id]
    assert (mine.status, mine.reply) == ("completed", "Alpha's report.")
    assert theirs.status == "failed", "one session id cannot serve two agents' runs"
    assert theirs.error is not None and "agents sharing a store need distinct task names" in theirs.error


# ------------------------------------------------------------------ the actions


async def test_one_off_tasks_run_once_at_their_time_in_their_zone(tmp_path: Path) -> None:
    clock = Clock("2024-07-01T06:00:00")
    async with task_agent(tmp_path, clock) as (agent, service):
        task: TaskInfo = await call(
            agent,
            "create",
            name="call-mum",
            at="2024-07-01T09:00:00",
            timezone="Europe/Paris",
            instructions="Call.",
        )
        assert (task.trigger, task.next_run) == ("at", "2024-07-01T07:00:00Z")  # summer: UTC+2
        clock.set("2024-07-01T06:59:59")
        assert await service.run_due() == []
        clock.set("2024-07-01T07:00:10")
        (run,) = await service.run_due()
        clock.set("2024-07-02T07:00:00")
        assert await service.run_due() == []
        status: TaskStatus = await call(agent, "status", name="call-mum")
        error = await refused(
            agent, "create", name="late", at="2024-07-01T00:00:00Z", instructions="Too late."
        )
    assert (run.scheduled, run.status) == ("2024-07-01T07:00:00Z", "completed")
    assert (status.task.next_run, status.runs) == (None, 1)
    assert "task.at: '2024-07-01T00:00:00Z' is in the past" in error


async def test_disable_enable_update_and_delete(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock) as (agent, service):
        await call(agent, "create", name="report", cron=EVERY_5_MINUTES, instructions="Report.")
        disabled: TaskInfo = await call(agent, "disable", name="report")
        assert (disabled.enabled, disabled.next_run) == (False, None)
        clock.set("2024-01-01T00:07:00")
        assert await service.run_due() == [], "a disabled task is not scheduled"
        manual: TaskRun = await call(agent, "run", name="report")
        assert manual.status == "completed", "but it still runs by hand"

        enabled: TaskInfo = await call(agent, "enable", name="report")
        assert enabled.next_run == "2024-01-01T00:10:00Z", "enabling does not catch up"

        updated: TaskInfo = await call(
            agent, "update", name="report", cron="0 * * * *", instructions="Hourly."
        )
        assert (updated.cron, updated.instructions, updated.next_run) == (
            "0 * * * *",
            "Hourly.",
            "2024-01-01T01:00:00Z",
        )
        kept: TaskInfo = await call(agent, "update", name="report", instructions="Hourly report.")
        assert kept.next_run == updated.next_run, "the schedule stays when the trigger does"
        manual_only: TaskInfo = await call(agent, "update", name="report", cron="")
        assert (manual_only.trigger, manual_only.next_run) == ("manual", None)

        assert await call(agent, "delete", name="report") is True
        assert await call(agent, "list") == []
        assert "no task 'report' (tasks: none)" in await refused(agent, "status", name="report")
        assert await agent.context.session.get(manual.session_id) is not None, "the runs' sessions stay"


async def test_the_newest_runs_are_kept_and_listed_newest_first(tmp_path: Path) -> None:
    clock = Clock("2024-01-01T00:00:00")
    async with task_agent(tmp_path, clock, service={"task": {"keep_runs": 2}}) as (agent, _):
        await call(agent, "create", name="a", instructions="A.")
        await call(agent, "create", name="b", instructions="B.")
        made = []
        for second in range(3):
            clock.set(f"2024-01-01T00:00:0{second}")
            made += [await call(agent, "run", name="a"), await call(agent, "run", name="b")]
        newest: list[TaskRun] = await call(agent, "runs", limit=3)
        kept_a: list[TaskRun] = await call(agent, "runs", name="a")
        status: TaskStatus = await call(agent, "status", name="a")
        assert await agent.context.session.get(made[0].session_id) is not None, "sessions outlive records"
    assert [run.run_id for run in newest] == [made[5].run_id, made[4].run_id, made[3].run_id]
    assert [run.run_id for run in kept_a] == [made[4].run_id, made[2].run_id]
    assert (status.runs, status.last_run) == (2, made[4])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "a b"}, "task.name: 'a b' is not a task name"),
        ({"instructions": "  "}, "task.instructions: must not be empty"),
        ({"cron": "every day"}, "task.cron: 'every day' is not a cron expression"),
        ({"cron": "0 9 * * *", "at": "2030-01-01T00:00:00Z"}, "task: give cron or at, not both"),
        ({"at": "tomorrow"}, "task.at: 'tomorrow' is not an ISO 8601 time"),
        ({"timezone": "Mars/Olympus"}, "task.timezone: 'Mars/Olympus' is not a known time zone"),
        ({"missed": "twice"}, "missed: 'twice' is not one of once, all, skip"),
    ],
)
async def test_a_bad_task_definition_names_the_field(
    tmp_path: Path, payload: dict[str, Any], message: str
) -> None:
    async with task_agent(tmp_path) as (agent, _):
        error = await refused(agent, "create", **{"name": "x", "instructions": "Do.", **payload})
        assert message in error
        assert await call(agent, "list") == []


async def test_creating_a_task_twice_or_touching_an_unknown_one_is_an_error(tmp_path: Path) -> None:
    async with task_agent(tmp_path) as (agent, _):
        await call(agent, "create", name="x", instructions="Do.")
        assert "task 'x' exists already" in await refused(agent, "create", name="x", instructions="Again.")
        for action in ("run", "status", "enable", "disable", "delete", "update", "runs"):
            assert "no task 'nope' (tasks: x)" in await refused(agent, action, name="nope")


# ------------------------------------------------------------------ the command line


def turnkit(*args: str, cwd: Path, expect: int = 0) -> Any:
    result = run_turnkit(*args, cwd=cwd, timeout=60)
    assert result.returncode == expect, str(result)
    return result


def test_the_cli_creates_lists_and_runs_tasks(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text(
        '[store]\nurl = "t.db"\n\n[[service.task.tasks]]\nname = "nightly"\n'
        'instructions = "Back up."\ncron = "0 2 * * *"\n'
    )
    help_text = turnkit("task", "--help", cwd=tmp_path).stdout
    for command in ("create", "delete", "disable", "enable", "list", "run", "runs", "status", "update"):
        assert re.search(rf"^\s+{command}\b", help_text, re.MULTILINE), help_text

    created = turnkit(
        "task",
        "create",
        "--name",
        "x",
        "--cron",
        EVERY_5_MINUTES,
        "--instructions",
        "Say hello.",
        cwd=tmp_path,
    ).json()
    assert (created["name"], created["cron"], created["trigger"]) == ("x", EVERY_5_MINUTES, "cron")
    listed = turnkit("task", "list", cwd=tmp_path).json()
    assert [(task["name"], task["source"]) for task in listed] == [("nightly", "config"), ("x", "action")]

    run = turnkit("task", "run", "--name", "x", cwd=tmp_path).json()
    assert (run["status"], run["reply"], run["trigger"]) == ("completed", "Say hello.", "manual")
    runs = turnkit("task", "runs", "--name", "x", cwd=tmp_path).json()
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    status = turnkit("invoke", "task.status", json.dumps({"name": "x"}), cwd=tmp_path).json()
    assert status["last_run"]["run_id"] == run["run_id"]
    sessions = turnkit("sessions", "list", "--json", cwd=tmp_path).stdout
    assert run["session_id"] in sessions

    missing = turnkit("task", "run", "--name", "nope", cwd=tmp_path, expect=1)
    assert "no task 'nope' (tasks: nightly, x)" in missing.stderr


def test_turnkit_serve_runs_scheduled_tasks(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text(
        '[store]\nurl = "t.db"\n\n[services]\ndisabled = ["chat"]\n\n[service.task]\npoll = 0.1\n\n'
        '[[service.task.tasks]]\nname = "tick"\ninstructions = "Tick."\ncron = "* * * * * *"\n'
    )
    server = subprocess.Popen(
        [*turnkit_command(), "serve"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            runs = turnkit("task", "runs", "--name", "tick", cwd=tmp_path).json()
            if any(run["status"] == "completed" for run in runs):
                break
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "turnkit serve ran no task within 30s"
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, f"{out}{err}"
    assert RUN_ID.match(runs[-1]["run_id"]) and runs[-1]["reply"] == "Tick."
