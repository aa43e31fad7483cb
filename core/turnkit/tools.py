"""Tools plugins contribute: who owns each tool on offer, and name clashes.

The tools of a turn start as the services' actions marked ``tool=True``;
each ``turn_tools`` implementation may add tools of its own or leave some
out (docs/points/turn_tools.md). Ownership decides who runs a call, so the
runtime sets it, as it sets ``Deny.plugin``: :func:`adopt` is applied to
every answer of that pipeline, with the plugin that gave it. A plugin
cannot take a tool over (a tool keeps the owner it had when it was first
offered), and a name offered twice keeps its first owner; the refusal names
both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs
from turnkit_hookspecs import ToolSpec

log = logging.getLogger("turnkit.tools")

#: Refusals already logged: a clash repeats every turn, the operator needs it once.
_reported: set[str] = set()


def adopt(offered: Sequence[ToolSpec], returned: object, plugin: str) -> tuple[ToolSpec, ...]:
    """The tools ``plugin``'s ``turn_tools`` answer offers, each with its owner set.

    A tool already on offer keeps its owner (and a rewrite of it by
    ``plugin`` its owner too); a new one becomes ``plugin``'s. A name given
    twice keeps the tool that was on offer before (else the first), and the
    other is refused and logged. Anything but a tuple or list of ``ToolSpec``
    raises ``TypeError``, which fails the turn naming the plugin, like any
    pipeline answer of the wrong type.
    """
    if not isinstance(returned, tuple | list) or not all(isinstance(t, ToolSpec) for t in returned):
        kind = type(returned).__name__
        raise TypeError(f"returned {kind}, expected a tuple or list of ToolSpec or None")
    before = {tool.name: tool for tool in offered}
    kept: dict[str, ToolSpec] = {}
    for tool in returned:
        owner = before[tool.name].plugin if tool.name in before else plugin
        stamped = tool if tool.plugin == owner else attrs.evolve(tool, plugin=owner)
        earlier = kept.get(tool.name)
        if earlier is None:
            kept[tool.name] = stamped
            continue
        if stamped == before.get(tool.name):  # the one on offer stays, whatever came first
            kept[tool.name] = stamped
        _refuse(tool.name, plugin, kept[tool.name])
    return tuple(kept.values())


def owner(tool: ToolSpec) -> str:
    """Who offers ``tool``, in words: ``plugin mcp`` or ``service memory``."""
    if tool.plugin is not None:
        return f"plugin {tool.plugin}"
    return f"service {tool.name.split('.', 1)[0]}"


def _refuse(name: str, plugin: str, kept: ToolSpec) -> None:
    message = (
        f"tool {name!r} offered by plugin {plugin} is refused: {owner(kept)} already offers a tool"
        " of that name (rename one of them)"
    )
    if message not in _reported:
        _reported.add(message)
        log.warning("%s", message)
