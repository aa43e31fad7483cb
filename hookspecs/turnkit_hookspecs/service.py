"""What a service distribution registers under the ``turnkit.services`` group."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import ClassVar

from .context import ExecutionContext


class Service:
    """Base class for a service: a main workflow owning its domain state.

    ``name`` is how actions are addressed (``"shell.exec"``). ``hookspecs``
    lists the modules or classes declaring the service's own extension points
    with the kind decorators; the runtime adds them before any plugin is
    validated. A service object is also registered with the plugin manager,
    so it may implement points itself with ``@hookimpl``.
    """

    name: ClassVar[str]
    hookspecs: ClassVar[Sequence[ModuleType | type]] = ()

    async def start(self, context: ExecutionContext) -> None:
        """Acquire resources; called in the agent's start order."""

    async def stop(self) -> None:
        """Release resources; called in reverse start order."""
