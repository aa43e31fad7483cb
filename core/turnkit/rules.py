"""What each kind does with an answer, a failure, and running out of implementations.

This is the table of docs/architecture.md, "The four kinds", as code; the
dispatcher's single call loop asks these rules only when an implementation
returns something other than ``None`` or raises, so the common path
(``None``) never leaves the loop.
``marks`` collects the trace outcomes that are not ``ok``, by call index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from turnkit_hookspecs import Deny, Kind

from .errors import NoResolutionError, PipelineError, PluginHung, PluginTimeout, ResolveError
from .plan import Plan
from .tools import adopt
from .tracing import Outcome

log = logging.getLogger("turnkit.dispatch")

#: The dispatcher's record of outcomes other than ``ok``, by call index (see tracing.Marks).
Marks = dict[int, Outcome]


class Rules(Protocol):
    """One kind's dispatch rules."""

    def answered(
        self, plan: Plan, kwargs: dict[str, Any], plugin: str, result: Any, marks: Marks, index: int
    ) -> tuple[bool, Any]:
        """Handle a non-``None`` result: ``(True, value)`` stops the dispatch with ``value``."""

    def failed(self, plan: Plan, plugin: str, error: Exception, marks: Marks, index: int) -> Any:
        """Handle an implementation that raised: return the dispatch's result, or raise."""

    def exhausted(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        """Every implementation ran without stopping the dispatch: its result, or raise."""


class GuardRules:
    """The first ``Deny`` stops; anything else than ``None``/``True``/``Deny`` denies (fail closed)."""

    def answered(
        self, plan: Plan, kwargs: dict[str, Any], plugin: str, result: Any, marks: Marks, index: int
    ) -> tuple[bool, Any]:
        if result is True:
            return False, None
        if isinstance(result, Deny):
            marks[index] = ("deny", result.reason)
            return True, result if result.plugin == plugin else attrs.evolve(result, plugin=plugin)
        problem = f"returned {type(result).__name__}, expected a Deny or None"
        marks[index] = ("error", problem)
        return True, Deny(f"{plugin} {problem}", plugin=plugin)

    def failed(self, plan: Plan, plugin: str, error: Exception, marks: Marks, index: int) -> Deny:
        problem = _mark(marks, index, error, "failed:")
        log.warning("guard %s: plugin %s %s; denying", plan.point, plugin, problem)
        return Deny(f"{plugin} {problem}", plugin=plugin)

    def exhausted(self, plan: Plan, kwargs: dict[str, Any]) -> None:
        return None


#: Pipelines whose answers the runtime completes with who gave them, before the type check:
#: a plugin's tools become its own (tools.adopt); it raises ``TypeError`` for a wrong answer.
ADOPTED: dict[str, Callable[[Any, Any, str], Any]] = {"turn_tools": adopt}


class PipelineRules:
    """The value is replaced by each non-``None`` result of the declared type."""

    def answered(
        self, plan: Plan, kwargs: dict[str, Any], plugin: str, result: Any, marks: Marks, index: int
    ) -> tuple[bool, Any]:
        expected = plan.kind.value_type
        assert expected is not None and plan.kind.value is not None
        adopted = ADOPTED.get(plan.point)
        if adopted is not None:
            try:
                result = adopted(kwargs[plan.kind.value], result, plugin)
            except TypeError as exc:
                marks[index] = ("error", str(exc))
                raise PipelineError(plan.point, plugin, str(exc)) from None
        if not isinstance(result, expected):
            problem = f"returned {type(result).__name__}, expected {expected.__name__} or None"
            marks[index] = ("error", problem)
            raise PipelineError(plan.point, plugin, problem)
        kwargs[plan.kind.value] = result
        marks[index] = ("value", None)
        return False, None

    def failed(self, plan: Plan, plugin: str, error: Exception, marks: Marks, index: int) -> Any:
        raise PipelineError(plan.point, plugin, _mark(marks, index, error, "raised")) from error

    def exhausted(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        assert plan.kind.value is not None
        return kwargs[plan.kind.value]


class ResolveRules:
    """The first non-``None`` answer of the declared type wins; none at all is an error naming the point."""

    def answered(
        self, plan: Plan, kwargs: dict[str, Any], plugin: str, result: Any, marks: Marks, index: int
    ) -> tuple[bool, Any]:
        expected = plan.kind.value_type
        if expected is not None and not isinstance(result, expected):
            problem = f"returned {type(result).__name__}, expected {expected.__name__} or None"
            marks[index] = ("error", problem)
            raise ResolveError(plan.point, plugin, problem)
        marks[index] = ("value", None)
        return True, result

    def failed(self, plan: Plan, plugin: str, error: Exception, marks: Marks, index: int) -> Any:
        raise ResolveError(plan.point, plugin, _mark(marks, index, error, "raised")) from error

    def exhausted(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        raise NoResolutionError(plan.point, list(plan.plugins))


def _mark(marks: Marks, index: int, error: Exception, verb: str) -> str:
    """Trace a failed call (``timeout`` or ``error``) and say what happened, for the message.

    The runtime's own refusals (a timeout, a plugin still hung) are said in
    words; a plugin's exception is shown as ``<verb> <repr>``.
    """
    if isinstance(error, PluginTimeout):
        marks[index] = ("timeout", f"exceeded {error.seconds:g}s")
        return str(error)
    marks[index] = ("error", repr(error))
    return str(error) if isinstance(error, PluginHung) else f"{verb} {error!r}"


#: The rules of the kinds dispatched in the caller's flow (effects run queued, see dispatch.py).
RULES: dict[Kind, Rules] = {
    Kind.GUARD: GuardRules(),
    Kind.PIPELINE: PipelineRules(),
    Kind.RESOLVE: ResolveRules(),
}
