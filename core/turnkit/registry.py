"""What the dispatcher needs to know about registrations, and nothing more.

The plugin manager implements :class:`Registry`; the dispatcher depends on
this interface instead of on the manager, so the two modules do not import
each other and a dispatcher can be tested over any registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
from turnkit_hookspecs import PointKind

from .config import PluginsConfig


@attrs.frozen
class Implementation:
    """One hookimpl of a point, as the dispatcher calls it and ``turnkit hooks`` shows it.

    ``trusted`` marks the runtime's own defaults and the services, which own
    the main paths and always run on the event loop; a plugin's ``def``
    implementation proves it is fast before it does (see dispatch.py).
    """

    plugin: str
    distribution: str | None
    function: Callable[..., Any] = attrs.field(eq=False)
    argnames: tuple[str, ...]
    is_async: bool
    wrapper: bool
    tryfirst: bool
    trylast: bool
    trusted: bool = False

    @property
    def qualname(self) -> str:
        """``module:function`` of the implementation."""
        return f"{self.function.__module__}:{self.function.__qualname__}"


class Registry(Protocol):
    """The points, their implementations in call order, and a counter of changes."""

    @property
    def config(self) -> PluginsConfig:
        """``[plugins]``: timeouts, workers, order."""

    @property
    def generation(self) -> int:
        """Bumped on every change of points or registrations: cached call plans are stale then."""

    def point(self, name: str) -> PointKind:
        """The kind of point ``name`` (raises naming the closest point when unknown)."""

    def implementations(self, point: str) -> list[Implementation]:
        """The implementations of ``point`` in exact call order (wrappers first)."""
