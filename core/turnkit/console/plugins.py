"""The plugins view: what ``turnkit plugins`` and ``turnkit hooks`` print, as one document."""

from __future__ import annotations

from typing import Any

from ..manager import PluginManager, PluginRecord


def listed_records(manager: PluginManager) -> list[PluginRecord]:
    """The services and plugins in the order ``turnkit plugins`` lists them: plugins first, by name."""
    return sorted(manager.records.values(), key=lambda r: (r.group != "turnkit.plugins", r.name))


def describe(manager: PluginManager) -> dict[str, Any]:
    """Every service and plugin (distribution, version, status, hooks, error) and every point with
    its implementations in call order, and the warnings ``turnkit hooks`` gives."""
    return {
        "plugins": [r.as_json() for r in listed_records(manager)],
        "points": [manager.describe_point(name) for name in sorted(manager.points())],
        "problems": [*manager.order_problems(), *manager.timeout_problems()],
    }
