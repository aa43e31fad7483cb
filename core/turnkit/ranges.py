"""The allowed values of configuration settings, stated once per field as attrs validators.

A validator here refuses a value with a message saying what is allowed
(``must be ≥ 1, got 0``) and tags the error with the key it is about, so
that when a configuration file is structured the contract's converter
reports it at that key (``@ $.plugins.effect_workers``), like a wrong type.
The same validators guard configurations built in code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from cattrs.errors import AttributeValidationNote

#: Upper bounds shared by many settings: no sane value comes near them, but
#: a typo such as ``1e18`` would overflow a timer or never end a wait.
DAY = 86_400.0
YEAR = 366 * DAY
THREADS = 1024


def setting_error(key: str, problem: str) -> ValueError:
    """A ``ValueError`` the converter reports at ``key`` of the table being structured."""
    error = ValueError(problem)
    error.add_note(AttributeValidationNote(f"in setting {key!r}", key, None))
    return error


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


@attrs.frozen
class Range:
    """A finite number from ``low`` (excluded when ``open_low``) to ``high``."""

    low: float
    high: float
    open_low: bool = False

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value``, or ``None``."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.open_low and not value > self.low:
            return f"must be > {_show(self.low)}, got {value!r}"
        if not value >= self.low:
            return f"must be ≥ {_show(self.low)}, got {value!r}"
        if not value <= self.high:
            return f"must be ≤ {_show(self.high)}, got {value!r}"
        return None

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        problem = self.problem(value)
        if problem is not None:
            raise setting_error(attribute.name, problem)


def between(low: float, high: float) -> Range:
    """``low`` ≤ value ≤ ``high``."""
    return Range(low, high)


def positive(high: float) -> Range:
    """0 < value ≤ ``high`` (durations and intervals, where 0 would spin or never wait)."""
    return Range(0, high, open_low=True)


def _blank_problem(value: str) -> str | None:
    """Empty, blank or control characters: what breaks ids, URLs and names."""
    if not value.strip():
        return "must not be empty"
    if not value.isprintable():
        return f"must not contain control characters, got {value!r}"
    return None


def nonblank(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """A validator: a non-blank, printable string."""
    problem = _blank_problem(value)
    if problem is not None:
        raise setting_error(attribute.name, problem)


@attrs.frozen
class EachValue:
    """Checks every value of a mapping with ``check``, naming the entry (``timeouts['x']``)."""

    check: Range

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
        for key, item in value.items():
            problem = self.check.problem(item)
            if problem is not None:
                raise setting_error(f"{attribute.name}[{key!r}]", problem)


def each_nonblank(instance: object, attribute: attrs.Attribute[Any], value: Iterable[str]) -> None:
    """A validator: every item of a list is a non-blank, printable string (``env[0]``)."""
    for index, item in enumerate(value):
        problem = _blank_problem(item)
        if problem is not None:
            raise setting_error(f"{attribute.name}[{index}]", problem)
