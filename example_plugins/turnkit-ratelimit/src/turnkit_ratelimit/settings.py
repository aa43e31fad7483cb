"""``[plugin.ratelimit]``: how many turns, for whom, and who is exempt.

The runtime structures the table into :class:`RateLimitSettings` when the
agent starts; a wrong key, a wrong type or an impossible number stops the
start with the key path (``… @ $.plugin.ratelimit.per_principal``).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
from turnkit_hookspecs import Initiator


def _at_least_one(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _positive_finite(_: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class Limit:
    """One token bucket: a burst of ``capacity`` turns, then ``refill_per_second`` turns a second.

    A turn takes one token; a bucket that has none denies the turn. Tokens
    come back continuously, up to ``capacity``. ``enabled = false`` switches
    the bucket off.
    """

    capacity: int = attrs.field(default=10, validator=_at_least_one)
    refill_per_second: float = attrs.field(default=0.2, validator=_positive_finite)
    enabled: bool = True


@attrs.frozen
class RateLimitSettings:
    """The whole ``[plugin.ratelimit]`` table.

    ``per_principal`` limits each sender (the turn's ``initiator_id``; turns
    without one share a single anonymous bucket); ``per_session`` limits each
    session whoever writes to it. Turns whose ``initiator`` is listed in
    ``exempt_initiators`` (by default the agent's own work: scheduled tasks
    are ``system``, a plugin's forked turns ``extension``), or whose
    ``initiator_id`` matches a shell-style pattern of ``exempt_principals``
    (``"task:*"``, ``"telegram:42"``), are never limited.
    """

    per_principal: Limit = attrs.field(factory=Limit)
    per_session: Limit = attrs.field(factory=Limit)
    exempt_initiators: list[Initiator] = attrs.field(factory=lambda: ["system", "extension"])
    exempt_principals: list[str] = attrs.field(factory=list)
