"""The task scheduler of several workers on one store: each due time runs once, whoever runs it.

Every worker's scheduler looks for due runs every 0.1 s and they race for
the same due times; the run's record, created with compare-and-set, lets
one of them start it. The task runs every second with ``missed = "all"``,
so that every due time must run: a gap is a lost run, a second turn in a
run's session a doubled one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .support import Cluster, Snapshot, Worker, ran_once, task_table, tracebacks, wait_until

TICK = "slow=0.3 tick"


def runs_of(cluster: Cluster, task: str) -> list[dict[str, Any]]:
    """The task's run records, by due time."""
    found = [run for run in cluster.store.records("task", "runs") if run["task"] == task]
    return sorted(found, key=lambda run: run["scheduled"])


def due(run: dict[str, Any]) -> datetime:
    """A run's due time."""
    return datetime.fromisoformat(run["scheduled"]).astimezone(UTC)


def completed_since(cluster: Cluster, moment: datetime) -> list[dict[str, Any]]:
    """The completed runs of ``tick`` due after ``moment``."""
    return [run for run in runs_of(cluster, "tick") if run["status"] == "completed" and due(run) > moment]


def running_a_run(cluster: Cluster, workers: list[Worker]) -> Worker | None:
    """A worker whose model is answering a run's turn right now, if any."""
    answered = {line.turn for line in cluster.asked("answered")}
    for line in cluster.asked():
        if line.session.startswith("task-tick-") and line.turn not in answered:
            return next((w for w in workers if w.pid == line.pid), None)
    return None


def claimed_by(run: dict[str, Any], worker: Worker) -> bool:
    """Whether the run record names ``worker`` (a claim's owner is ``host:pid:…``)."""
    return str(run["owner"]).split(":")[1] == str(worker.pid)


def test_three_schedulers_run_each_due_time_once_also_after_one_is_killed(cluster: Cluster) -> None:
    """A task due every second, three workers: every due second runs exactly once, one turn each.

    Then the worker running a run's turn is SIGKILLed: that turn is taken
    over and re-run by a survivor (and the run recorded once), and the two
    survivors go on running every due time once.
    """
    cluster.configure(tasks=task_table("tick", TICK, cron="* * * * * *", missed="all"))
    workers = cluster.serve("w0", "w1", "w2")
    start = datetime.now(UTC)
    wait_until(lambda: len(completed_since(cluster, start)) >= 4, "four runs with three workers", 20)
    victim = wait_until(lambda: running_a_run(cluster, workers), "a worker running a run's turn", 10)
    victim.kill()
    killed = datetime.now(UTC)
    answered = {line.turn for line in cluster.asked("answered")}
    cut_turns = {line.turn for line in cluster.asked() if line.pid == victim.pid} - answered
    survivors = [w for w in workers if w is not victim]
    wait_until(lambda: len(completed_since(cluster, killed)) >= 3, "three runs after the kill", 20)
    for worker in survivors:
        assert worker.stop() == 0, worker.output()
    stopped = datetime.now(UTC)

    runs = runs_of(cluster, "tick")
    snapshot: Snapshot = cluster.store.snapshot()
    # every due time from the first on ran, once: no gap, nothing skipped, none twice
    settled = [run for run in runs if due(run) < stopped - timedelta(seconds=1)]
    assert all(run["status"] == "completed" for run in settled), [
        r for r in settled if r["status"] != "completed"
    ]
    seconds = [due(run) for run in runs]
    assert seconds == [seconds[0] + timedelta(seconds=i) for i in range(len(seconds))], "a due time was lost"
    assert all(run["skipped"] == 0 and run["trigger"] == "schedule" for run in runs)
    tasks = snapshot.of_kind("task")
    assert sorted(tasks) == sorted(run["run_id"] for run in runs), "one session per run"
    for run in settled:
        state = tasks[run["run_id"]]
        assert state.history == [("user", TICK), ("assistant", f"re: {TICK}")], (run, state.history)
        assert ran_once(state.turns), (run, state.turns)
        assert run["reply"] == f"re: {TICK}" and run["turn_id"] == state.turns[-1].turn_id
    # the kill cut a run's turn: a survivor re-ran it, and the run is recorded once, completed
    cut = [run for run in settled if tasks[run["run_id"]].statuses() == ["interrupted", "completed"]]
    assert cut_turns and len(cut) == 1, [tasks[r["run_id"]].statuses() for r in settled]
    assert cut_turns == {tasks[cut[0]["run_id"]].turns[0].turn_id}
    assert not [run for run in settled if due(run) > killed and claimed_by(run, victim)]
    assert not tracebacks(survivors), cluster.logs()
    claims = {w.name: sum(claimed_by(run, w) for run in runs) for w in workers}
    print(f"\n{len(runs)} runs ({claims} claimed); killed {victim.name}, cutting {cut[0]['run_id']}")


def test_a_run_queued_behind_a_long_turn_of_its_target_session_runs_once(cluster: Cluster) -> None:
    """A task whose runs are turns of a busy session: its run waits in the queue, and runs once.

    ``turnkit send`` holds a turn of session ``shared`` open; the task's one
    due time comes; a worker claims the run and queues its turn behind the
    held one. The other worker's scheduler sees the due time still pending
    (``next_run`` advances once the turn ends) for longer than
    ``claim_lease``: it must recognise the queued turn as the run's, not
    start the run again.
    """
    hold = cluster.start("send", "gate=s hold", "--session", "shared")
    cluster.wait_asked("gate=s hold")
    at = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.configure(tasks=task_table("noted", "Take note.", at=at, session="shared"), claim_lease=0.5)
    cluster.serve("a", "b")

    def queued() -> bool:
        return "queued" in cluster.store.session("shared").statuses()

    wait_until(queued, "the run's turn to queue behind the held one", 15)
    time.sleep(0.5 + 1.0)  # claim_lease, and a few scheduler polls of both workers
    cluster.open_gate("s")
    assert cluster.finish(hold).returncode == 0
    state = cluster.wait_quiet().sessions["shared"]
    [run] = runs_of(cluster, "noted")
    assert run["status"] == "completed"
    assert [text for role, text in state.history if role == "user"] == ["gate=s hold", "Take note."]
