"""Kind-aware dispatch of extension points (DESIGN §3).

One coroutine per kind. Implementations may be ``def`` or ``async def``;
coroutines are awaited one at a time, in call order, which pluggy's own
``firstresult`` cannot do. Every call is traced: point, kind, plugin,
duration (measured after awaiting) and outcome.

Hot-path notes: per point a *plan* (the ordered implementations as plain
tuples) is built once and reused until the manager's registrations change;
each call costs one ``perf_counter`` and one tuple, and the trace sink gets
one batch per dispatch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

import attrs
from turnkit_hookspecs import Deny, Kind, PointKind

from .errors import DispatchError, NoResolutionError, PipelineError, ResolveError
from .tracing import Call, MemoryTraceSink, TraceSink, trace_scope

if TYPE_CHECKING:
    from .manager import PluginManager

log = logging.getLogger("turnkit.dispatch")

#: (plugin name, function, argument names, is a coroutine function)
Step = tuple[str, Callable[..., Any], tuple[str, ...], bool]
#: A step with its arguments taken from the call: (plugin name, function, arguments, is async)
Bound = tuple[str, Callable[..., Any], list[Any], bool]


@attrs.frozen
class Plan:
    """A point's implementations, resolved once, in call order."""

    point: str
    kind: PointKind
    steps: tuple[Step, ...]
    wrappers: tuple[Step, ...]
    timeout: float


class Dispatcher:
    """Dispatches the points of one :class:`~turnkit.manager.PluginManager`."""

    def __init__(self, manager: PluginManager, trace_sink: TraceSink | None = None) -> None:
        self._manager = manager
        self.trace: TraceSink = trace_sink if trace_sink is not None else MemoryTraceSink()
        self._plans: dict[str, Plan] = {}
        self._generation = -1
        self._pending: set[asyncio.Task[None]] = set()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ plans

    def plan(self, point: str) -> Plan:
        """The cached plan of ``point`` (rebuilt after any registration change)."""
        if self._generation != self._manager.generation:
            self._plans.clear()
            self._generation = self._manager.generation
        plan = self._plans.get(point)
        if plan is None:
            plan = self._plans[point] = self._build(point)
        return plan

    def _build(self, point: str) -> Plan:
        kind = self._manager.point(point)
        config = self._manager.config
        impls = self._manager.implementations(point)
        steps = tuple((i.plugin, i.function, i.argnames, i.is_async) for i in impls if not i.wrapper)
        wrappers = tuple((i.plugin, i.function, i.argnames, False) for i in impls if i.wrapper)
        timeout = config.effect_timeouts.get(point, kind.timeout or config.effect_timeout)
        return Plan(point, kind, steps, wrappers, timeout)

    def _checked(self, point: str, expected: Kind) -> Plan:
        plan = self.plan(point)
        if plan.kind.kind is not expected:
            raise DispatchError(
                f"{point!r} is a {plan.kind.kind} point, not a {expected}; use dispatch.{plan.kind.kind}()"
            )
        return plan

    # ------------------------------------------------------------------ the four kinds

    async def call(self, point: str, /, **kwargs: Any) -> Any:
        """Dispatch ``point`` by its declared kind."""
        kind = self.plan(point).kind.kind
        method: Callable[..., Awaitable[Any]] = getattr(self, kind.value)
        return await method(point, **kwargs)

    async def guard(self, point: str, /, **kwargs: Any) -> Deny | None:
        """Return the first ``Deny`` (with ``plugin`` set), or ``None`` when all allow.

        An implementation that raises, or returns anything but ``None``,
        ``True`` or a ``Deny``, denies (fail closed); the failure is traced.
        """
        plan = self._checked(point, Kind.GUARD)
        if plan.wrappers:
            return await self._wrapped(plan, kwargs, self._guard)  # type: ignore[no-any-return]
        return await self._guard(plan, kwargs)

    async def pipeline(self, point: str, /, **kwargs: Any) -> Any:
        """Thread the point's value through every implementation; ``None`` keeps it.

        Raises :class:`PipelineError` naming the plugin when one raises or
        returns a value of the wrong type.
        """
        plan = self._checked(point, Kind.PIPELINE)
        if plan.wrappers:
            return await self._wrapped(plan, kwargs, self._pipeline)
        return await self._pipeline(plan, kwargs)

    async def resolve(self, point: str, /, **kwargs: Any) -> Any:
        """Return the first non-``None`` answer; raise :class:`NoResolutionError` if none.

        An implementation that raises fails the point with :class:`ResolveError`.
        """
        plan = self._checked(point, Kind.RESOLVE)
        if plan.wrappers:
            return await self._wrapped(plan, kwargs, self._resolve)
        return await self._resolve(plan, kwargs)

    async def effect(self, point: str, /, **kwargs: Any) -> None:
        """Start every implementation in the background and return at once.

        Implementations run one after another in call order, each under the
        point's timeout: ``async def`` ones on the loop, ``def`` ones on a
        worker thread (so a hanging one cannot block the agent). Failures and
        timeouts are logged and traced, never raised. :meth:`drain` waits for
        everything started so far.
        """
        plan = self._checked(point, Kind.EFFECT)
        if not plan.steps and not plan.wrappers:
            return
        calls = [
            (plugin, fn, _args(point, argnames, kwargs), is_async)
            for plugin, fn, argnames, is_async in plan.steps
        ]
        task = asyncio.get_running_loop().create_task(self._effects(plan, kwargs, calls))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait until every effect started so far has finished (or timed out)."""
        while self._pending:
            await asyncio.gather(*self._pending)

    async def aclose(self) -> None:
        """Drain the effects and release the worker threads."""
        await self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ kind loops

    async def _guard(self, plan: Plan, kwargs: dict[str, Any]) -> Deny | None:
        calls: list[Call] = []
        started = perf_counter()
        try:
            for plugin, function, argnames, is_async in plan.steps:
                args = _args(plan.point, argnames, kwargs)
                try:
                    result = function(*args)
                    if is_async or (result is not None and inspect.isawaitable(result)):
                        result = await result
                except Exception as exc:
                    now = perf_counter()
                    calls.append((plugin, now - started, "error", repr(exc)))
                    log.warning("guard %s: plugin %s raised %r; denying", plan.point, plugin, exc)
                    return Deny(f"{plugin} failed: {exc!r}", plugin=plugin)
                now = perf_counter()
                if result is None or result is True:
                    calls.append((plugin, now - started, "ok", None))
                    started = now
                    continue
                if isinstance(result, Deny):
                    calls.append((plugin, now - started, "deny", None))
                    return result if result.plugin == plugin else attrs.evolve(result, plugin=plugin)
                problem = f"returned {type(result).__name__}, expected a Deny or None"
                calls.append((plugin, now - started, "error", problem))
                return Deny(f"{plugin} {problem}", plugin=plugin)
            return None
        finally:
            self.trace.record(trace_scope.get(), plan.point, Kind.GUARD, calls)

    async def _pipeline(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        calls: list[Call] = []
        name = plan.kind.value
        expected = plan.kind.value_type
        assert name is not None and expected is not None
        if name not in kwargs:
            raise DispatchError(f"pipeline {plan.point!r} needs the argument {name!r}")
        started = perf_counter()
        try:
            for plugin, function, argnames, is_async in plan.steps:
                args = _args(plan.point, argnames, kwargs)
                try:
                    result = function(*args)
                    if is_async or (result is not None and inspect.isawaitable(result)):
                        result = await result
                except Exception as exc:
                    calls.append((plugin, perf_counter() - started, "error", repr(exc)))
                    raise PipelineError(plan.point, plugin, f"raised {exc!r}") from exc
                now = perf_counter()
                if result is None:
                    calls.append((plugin, now - started, "ok", None))
                elif isinstance(result, expected):
                    kwargs[name] = result
                    calls.append((plugin, now - started, "value", None))
                else:
                    problem = f"returned {type(result).__name__}, expected {expected.__name__} or None"
                    calls.append((plugin, now - started, "error", problem))
                    raise PipelineError(plan.point, plugin, problem)
                started = now
            return kwargs[name]
        finally:
            self.trace.record(trace_scope.get(), plan.point, Kind.PIPELINE, calls)

    async def _resolve(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        calls: list[Call] = []
        started = perf_counter()
        try:
            for plugin, function, argnames, is_async in plan.steps:
                args = _args(plan.point, argnames, kwargs)
                try:
                    result = function(*args)
                    if is_async or (result is not None and inspect.isawaitable(result)):
                        result = await result
                except Exception as exc:
                    calls.append((plugin, perf_counter() - started, "error", repr(exc)))
                    raise ResolveError(plan.point, plugin, f"raised {exc!r}") from exc
                now = perf_counter()
                if result is not None:
                    calls.append((plugin, now - started, "value", None))
                    return result
                calls.append((plugin, now - started, "ok", None))
                started = now
            raise NoResolutionError(plan.point, [step[0] for step in plan.steps])
        finally:
            self.trace.record(trace_scope.get(), plan.point, Kind.RESOLVE, calls)

    async def _effects(self, plan: Plan, kwargs: dict[str, Any], calls: list[Bound]) -> None:
        if plan.wrappers:
            await self._wrapped(plan, kwargs, lambda plan, _: self._run_effects(plan, calls))
        else:
            await self._run_effects(plan, calls)

    async def _run_effects(self, plan: Plan, bound: list[Bound]) -> None:
        calls: list[Call] = []
        loop = asyncio.get_running_loop()
        for plugin, function, args, is_async in bound:
            started = perf_counter()
            try:
                if is_async:
                    await asyncio.wait_for(function(*args), plan.timeout)
                else:
                    job = loop.run_in_executor(self._workers(), partial(function, *args))
                    result = await asyncio.wait_for(job, plan.timeout)
                    if inspect.isawaitable(result):
                        await asyncio.wait_for(result, plan.timeout)
                calls.append((plugin, perf_counter() - started, "ok", None))
            except TimeoutError:
                calls.append((plugin, perf_counter() - started, "timeout", f"exceeded {plan.timeout}s"))
                log.warning("effect %s: plugin %s timed out after %ss", plan.point, plugin, plan.timeout)
            except Exception as exc:
                calls.append((plugin, perf_counter() - started, "error", repr(exc)))
                log.warning("effect %s: plugin %s raised %r", plan.point, plugin, exc, exc_info=exc)
        self.trace.record(trace_scope.get(), plan.point, Kind.EFFECT, calls)

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self._manager.config.effect_workers, thread_name_prefix="turnkit-effect"
            )
        return self._pool

    # ------------------------------------------------------------------ wrappers

    async def _wrapped(
        self,
        plan: Plan,
        kwargs: dict[str, Any],
        inner: Callable[[Plan, dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        """Run pluggy-style ``wrapper=True`` generators around a kind loop.

        Each wrapper runs up to its ``yield``, receives the inner result (or
        has the inner exception thrown in) and may replace it by returning.
        """
        entered: list[tuple[str, Generator[None, Any, Any]]] = []
        result: Any = None
        error: BaseException | None = None
        try:
            for plugin, function, argnames, _ in plan.wrappers:
                generator = function(*_args(plan.point, argnames, kwargs))
                next(generator)
                entered.append((plugin, generator))
            result = await inner(plan, kwargs)
        except BaseException as exc:
            error = exc
        for plugin, generator in reversed(entered):
            try:
                if error is not None:
                    generator.throw(error)
                else:
                    generator.send(result)
                error = DispatchError(f"{plan.point}: wrapper {plugin!r} yielded more than once")
            except StopIteration as stop:
                result, error = stop.value, None
            except BaseException as exc:
                error = exc
        if error is not None:
            raise error
        return result


def _args(point: str, argnames: tuple[str, ...], kwargs: dict[str, Any]) -> list[Any]:
    try:
        return [kwargs[name] for name in argnames]
    except KeyError as exc:
        raise DispatchError(f"{point!r} dispatched without its argument {exc.args[0]!r}") from None
