"""The environment of a command, built in layers so that nothing leaks in unasked.

1. the base: ``PATH`` and ``LANG`` from ``[service.shell] path`` / ``lang``,
   then the host variables named in ``base_env`` (only those: the agent's
   own environment, with its tokens and keys, is never passed whole);
2. ``[service.shell] env``;
3. the session variables ``TURNKIT_AGENT``, and inside a turn
   ``TURNKIT_SESSION_ID`` and ``TURNKIT_TURN_ID``;
4. the ``shell_env`` pipeline (applied by the service, after this module).

Callers (a model's tool call) cannot add variables of their own: one
``LD_PRELOAD`` would turn any allowed program into any code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnkit_hookspecs import TurnInfo

from .settings import ShellSettings


def layered_env(
    settings: ShellSettings, host: Mapping[str, str], agent_id: str, turn: TurnInfo | None
) -> dict[str, str]:
    """Layers 1 to 3 above, later layers overriding earlier ones."""
    env = {"PATH": settings.path, "LANG": settings.lang}
    env.update({name: host[name] for name in settings.base_env if name in host})
    env.update(settings.env)
    env["TURNKIT_AGENT"] = agent_id
    if turn is not None:
        env["TURNKIT_SESSION_ID"] = turn.session_id
        env["TURNKIT_TURN_ID"] = turn.turn_id
    return env


def checked_env(env: Any) -> dict[str, str]:
    """The ``shell_env`` pipeline's result, refused unless it maps strings to strings."""
    if not isinstance(env, Mapping):
        raise TypeError(f"shell_env must give a dict of strings, got {type(env).__name__}")
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"shell_env gave {name!r}: {value!r}; names and values must be strings")
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise TypeError(f"shell_env gave an invalid variable {name!r}")
    return dict(env)
