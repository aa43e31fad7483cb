"""The task service: tasks run by hand, on a cron schedule or once at a time, each run a session turn."""

from .model import TaskInfo, TaskRun, TaskStatus
from .service import TaskService
from .settings import TaskSettings, TaskSpec

__all__ = ["TaskInfo", "TaskRun", "TaskService", "TaskSettings", "TaskSpec", "TaskStatus"]
