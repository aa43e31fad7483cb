"""The task service. Scheduled and manual task runs, each a session of kind task.

Its main path and actions arrive with their own issue; today it registers
itself so that discovery, start order and `turnkit plugins` see it.
"""

from turnkit_hookspecs import Service


class TaskService(Service):
    """Scheduled and manual task runs, each a session of kind task."""

    name = "task"
