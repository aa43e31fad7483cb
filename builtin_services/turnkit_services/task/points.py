"""Extension points of the task service, fired around every run of a task.

Order for one run: the run is claimed (its record written, so that no other
scheduler runs the same due time) → ``task_authorize`` (guard) → the run's
turn, through every turn point (``turn_authorize`` … ``turn_completed``) →
the outcome is recorded → ``task_finished`` (effect). Implementations may
take any subset of the arguments.
"""

from __future__ import annotations

from turnkit_hookspecs import Deny, Message, effect, guard

from .model import TaskInfo, TaskRun


@guard
def task_authorize(task: TaskInfo, run: TaskRun) -> Deny | None:
    """Decide whether a run of a task may start; it fires before any session or turn exists.

    A deny records the run as ``denied`` with the reason and the plugin, runs
    nothing, and fires ``task_finished``; the schedule moves on as if the
    run had happened. Raising counts as a deny.

    Example::

        @hookimpl
        def task_authorize(task, run):
            if run.trigger == "schedule" and task.name.startswith("report-") and holidays.today():
                return Deny("no reports on holidays")
    """


@effect
def task_finished(task: TaskInfo, run: TaskRun, reply: Message | None) -> None:
    """Observe a run whose outcome is recorded: ``completed``, ``failed`` or ``denied``.

    ``reply`` is the stored reply of a completed run, else ``None``. It fires
    once per run, also for a run whose turn a restart re-ran.

    Example::

        @hookimpl
        async def task_finished(task, run, reply):
            if run.status != "completed":
                await pager.alert(f"task {task.name}: run {run.run_id} {run.status}: {run.error}")
    """
