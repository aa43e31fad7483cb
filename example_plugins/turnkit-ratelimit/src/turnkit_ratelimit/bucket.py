"""Token-bucket arithmetic on plain numbers; the plugin keeps the state in the agent's store.

A bucket is stored as the tokens it held at a moment (``stamp``, UNIX
seconds). Its level at any later moment follows from the refill rate, so
nothing has to tick: reading a bucket is enough to know how full it is.

>>> limit = Limit(capacity=2, refill_per_second=0.5)
>>> state = Bucket(tokens=0.0, stamp=100.0)
>>> state.level(limit, now=101.0)
0.5
>>> state.level(limit, now=110.0)  # never above the capacity
2.0
>>> retry_after(0.5, limit)  # seconds until a whole token is back
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

import attrs

from .settings import Limit


class BucketStateError(ValueError):
    """A stored bucket does not hold what this plugin writes (edited by hand, or another plugin's)."""


@attrs.frozen
class Bucket:
    """A bucket's ``tokens`` at the moment ``stamp``."""

    tokens: float
    stamp: float

    @classmethod
    def full(cls, limit: Limit, now: float) -> Bucket:
        """A bucket never used: it holds its whole capacity."""
        return cls(float(limit.capacity), now)

    @classmethod
    def from_value(cls, key: str, value: Mapping[str, Any]) -> Bucket:
        """Read a stored record's value; anything else than two numbers is a :class:`BucketStateError`."""
        tokens, stamp = value.get("tokens"), value.get("stamp")
        if _is_number(tokens) and _is_number(stamp):
            return cls(float(tokens), float(stamp))
        raise BucketStateError(f"bucket {key!r} holds {dict(value)!r}, not tokens and stamp")

    def to_value(self) -> dict[str, float]:
        """What is stored for this bucket."""
        return {"tokens": self.tokens, "stamp": self.stamp}

    def level(self, limit: Limit, now: float) -> float:
        """The tokens held at ``now``, refilled since ``stamp`` and capped at the capacity.

        A ``stamp`` later than ``now`` (written by a process whose clock is
        ahead, or before this clock was set back) refills nothing until
        ``now`` catches up: tokens are never minted out of clock skew.
        """
        elapsed = max(0.0, now - self.stamp)
        return min(float(limit.capacity), self.tokens + elapsed * limit.refill_per_second)

    def changed(self, limit: Limit, now: float, delta: int) -> Bucket:
        """The bucket at ``now`` after ``delta`` tokens (``-1`` takes one, ``+1`` gives it back)."""
        return Bucket(min(float(limit.capacity), self.level(limit, now) + delta), max(now, self.stamp))


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def retry_after(level: float, limit: Limit) -> float:
    """Seconds until a bucket at ``level`` holds one whole token again."""
    return max(0.0, 1.0 - level) / limit.refill_per_second


def seconds_text(seconds: float) -> str:
    """``seconds`` rounded up to a tenth, without trailing zeros: ``2``, ``0.1``, ``12.5``.

    >>> seconds_text(1.96), seconds_text(0.01), seconds_text(12.5)
    ('2', '0.1', '12.5')
    """
    return f"{max(math.ceil(seconds * 10 - 1e-9), 1) / 10:g}"
