"""Kind-aware dispatch of extension points (docs/architecture.md, "The four kinds").

One coroutine per kind. Implementations may be ``def`` or ``async def``;
coroutines are awaited one at a time, in call order, which pluggy's own
``firstresult`` cannot do. Every call is traced: point, kind, plugin,
duration (measured after awaiting) and outcome.

Hot-path notes: per point a *plan* (the ordered implementations as plain
tuples) is built once and reused until the manager's registrations change;
each call costs one ``perf_counter`` and one list append, and the trace sink
gets one batch per dispatch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any

import attrs
from turnkit_hookspecs import Deny, Kind, PointKind

from .errors import DispatchError
from .rules import RULES, Marks
from .tracing import MemoryTraceSink, TraceSink, trace_scope

if TYPE_CHECKING:
    from .manager import PluginManager

log = logging.getLogger("turnkit.dispatch")

#: (plugin name, function, mode, argument getter, is a coroutine function). ``mode`` 0 calls
#: without arguments, 1 with ``kwargs[getter]``, 2 with ``*getter(kwargs)`` (an ``itemgetter``
#: or a function): calling through a getter avoids building an argument list per call, which
#: is most of a hook call's cost.
Step = tuple[str, Callable[..., Any], int, Any, bool]


class ContextSource:
    """A ``ctx`` argument that hands each plugin its own view.

    The orchestrator passes one per dispatch; an implementation taking
    ``ctx`` receives ``for_plugin(its name)``, so what it does through the
    context is audited under its own extension id. (A base class rather than
    a Protocol: the check runs per call and a class check is cheap.) Any
    other ``ctx`` value is passed to every implementation as it is.
    """

    def for_plugin(self, plugin: str) -> Any:
        """The view of the context ``plugin`` acts through."""
        raise NotImplementedError


def _step(plugin: str, function: Callable[..., Any], argnames: tuple[str, ...], is_async: bool) -> Step:
    if "ctx" in argnames:
        return (plugin, function, 2, _context_getter(plugin, argnames), is_async)
    arity = len(argnames)
    getter = None if arity == 0 else argnames[0] if arity == 1 else itemgetter(*argnames)
    return (plugin, function, min(arity, 2), getter, is_async)


def _context_getter(plugin: str, argnames: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Arguments for an implementation taking ``ctx``: the plugin's own view in its place."""

    def arguments(kwargs: dict[str, Any]) -> tuple[Any, ...]:
        source = kwargs["ctx"]
        view = source.for_plugin(plugin) if isinstance(source, ContextSource) else source
        return tuple(view if name == "ctx" else kwargs[name] for name in argnames)

    return arguments


def _bind(step: Step, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    _, _, mode, getter, _ = step
    return () if mode == 0 else (kwargs[getter],) if mode == 1 else getter(kwargs)


@attrs.frozen
class Plan:
    """A point's implementations, resolved once, in call order.

    ``needed`` is every argument some implementation takes: a dispatch
    missing one is the caller's error, found before any plugin runs.
    """

    point: str
    kind: PointKind
    steps: tuple[Step, ...]
    plugins: tuple[str, ...]
    wrappers: tuple[Step, ...]
    needed: frozenset[str]
    timeout: float


#: An effect dispatch waiting for a consumer: its plan, its arguments, its trace scope.
Queued = tuple[Plan, dict[str, Any], str | None]


class Dispatcher:
    """Dispatches the points of one :class:`~turnkit.manager.PluginManager`."""

    def __init__(self, manager: PluginManager, trace_sink: TraceSink | None = None) -> None:
        self._manager = manager
        self.trace: TraceSink = trace_sink if trace_sink is not None else MemoryTraceSink()
        self._plans: dict[str, Plan] = {}
        self._generation = -1
        self._queue: asyncio.Queue[Queued] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        #: Effect dispatches dropped because the queue was full, since start.
        self.dropped = 0
        self._dropping = False

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
        steps = tuple(_step(i.plugin, i.function, i.argnames, i.is_async) for i in impls if not i.wrapper)
        wrappers = tuple(_step(i.plugin, i.function, i.argnames, False) for i in impls if i.wrapper)
        needed = frozenset(name for i in impls for name in i.argnames).union(
            [kind.value] if kind.value else []
        )
        timeout = config.timeouts.get(point, kind.timeout or config.effect_timeout)
        return Plan(point, kind, steps, tuple(s[0] for s in steps), wrappers, needed, timeout)

    def _checked(self, point: str, expected: Kind, kwargs: dict[str, Any]) -> Plan:
        plan = self.plan(point)
        if plan.kind.kind is not expected:
            raise DispatchError(
                f"{point!r} is a {plan.kind.kind} point, not a {expected}; use dispatch.{plan.kind.kind}()"
            )
        if not plan.needed <= kwargs.keys():
            missing = ", ".join(sorted(plan.needed - kwargs.keys()))
            raise DispatchError(f"{point!r} dispatched without its argument(s) {missing}")
        return plan

    # ------------------------------------------------------------------ the four kinds
    #
    # guard, pipeline and resolve are plain methods returning the kind loop's
    # coroutine: awaiting them is the same for callers, minus one coroutine
    # frame per dispatch, and a misuse (wrong kind, missing argument) raises
    # at the call.

    async def call(self, point: str, /, **kwargs: Any) -> Any:
        """Dispatch ``point`` by its declared kind."""
        kind = self.plan(point).kind.kind
        method: Callable[..., Awaitable[Any]] = getattr(self, kind.value)
        return await method(point, **kwargs)

    def guard(self, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Deny | None]:
        """Return the first ``Deny`` (with ``plugin`` set), or ``None`` when all allow.

        An implementation that raises, or returns anything but ``None``,
        ``True`` or a ``Deny``, denies (fail closed); the failure is traced.
        """
        plan = self._checked(point, Kind.GUARD, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    def pipeline(self, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Thread the point's value through every implementation; ``None`` keeps it.

        Raises :class:`PipelineError` naming the plugin when one raises or
        returns a value of the wrong type.
        """
        plan = self._checked(point, Kind.PIPELINE, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    def resolve(self, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Return the first non-``None`` answer; raise :class:`NoResolutionError` if none.

        An implementation that raises fails the point with :class:`ResolveError`.
        """
        plan = self._checked(point, Kind.RESOLVE, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    async def effect(self, point: str, /, **kwargs: Any) -> None:
        """Queue every implementation to run in the background and return at once.

        ``effect_workers`` consumers take queued dispatches in order; each runs
        its implementations one after another in call order, each under the
        point's timeout: ``async def`` ones on the loop, ``def`` ones on a
        worker thread (so a hanging one cannot block the agent). Failures and
        timeouts are logged and traced, never raised. When ``effect_queue``
        dispatches are already waiting, this one is dropped and traced as
        ``dropped``: effects are best-effort, memory is bounded.
        :meth:`drain` waits for everything queued so far.
        """
        plan = self._checked(point, Kind.EFFECT, kwargs)
        if not plan.steps and not plan.wrappers:
            return
        loop = asyncio.get_running_loop()
        queue = self._queue if self._queue is not None and self._loop is loop else self._start_workers(loop)
        try:
            queue.put_nowait((plan, kwargs, trace_scope.get()))
            self._dropping = False
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._dropping:  # once per overload, not once per dropped dispatch
                log.warning(
                    "effect queue full (%d waiting): dropping effects, first %s", queue.maxsize, point
                )
                self._dropping = True
            stamp = perf_counter()
            dropped = {index: ("dropped", "effect queue full") for index in range(len(plan.steps))}
            stamps = [stamp] * (len(plan.steps) + 1)
            self.trace.record(trace_scope.get(), point, Kind.EFFECT, plan.plugins, stamps, dropped)

    async def drain(self) -> None:
        """Wait until every effect queued so far has finished (or timed out)."""
        if self._queue is not None and self._loop is asyncio.get_running_loop():
            await self._queue.join()

    async def aclose(self) -> None:
        """Drain the effects, stop the consumers and release the worker threads."""
        await self.drain()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers, self._queue = [], None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _start_workers(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Queued]:
        """Start the consumers on ``loop``.

        Also called when the dispatcher is used from a new event loop (a
        script calling ``asyncio.run`` twice): the old loop's consumers are
        gone with it, and a queue nobody reads would make ``drain`` hang.
        """
        config = self._manager.config
        queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=config.effect_queue)
        self._workers = [loop.create_task(self._consume(queue)) for _ in range(config.effect_workers)]
        self._queue, self._loop = queue, loop
        return queue

    async def _consume(self, queue: asyncio.Queue[Queued]) -> None:
        while True:
            plan, kwargs, scope = await queue.get()
            try:
                trace_scope.set(scope)
                if plan.wrappers:
                    await self._wrapped(plan, kwargs, self._run_effects)
                else:
                    await self._run_effects(plan, kwargs)
            except Exception:  # a wrapper may still raise: never let it kill the consumer
                log.exception("effect %s: wrapper failed", plan.point)
            finally:
                queue.task_done()

    # ------------------------------------------------------------------ the call loop

    async def _run(self, plan: Plan, kwargs: dict[str, Any]) -> Any:
        """Call a guard, pipeline or resolve point's implementations in order.

        One ``perf_counter`` and one append per call; arguments come through
        the step's getter; the kind's rules are consulted only for a
        non-``None`` result or an exception. Outcomes other than ``ok`` go to
        ``marks`` under the index of the call just stamped.
        """
        rules = RULES[plan.kind.kind]
        stamps = [perf_counter()]
        marks: Marks = {}
        try:
            for plugin, function, mode, getter, is_async in plan.steps:
                try:
                    if mode == 1:
                        result = function(kwargs[getter])
                    else:
                        result = function(*getter(kwargs)) if mode else function()
                    if is_async:
                        result = await result
                except Exception as exc:
                    stamps.append(perf_counter())
                    return rules.failed(plan, plugin, exc, marks, len(stamps) - 2)
                stamps.append(perf_counter())
                if result is not None:
                    done, value = rules.answered(plan, kwargs, plugin, result, marks, len(stamps) - 2)
                    if done:
                        return value
            return rules.exhausted(plan, kwargs)
        finally:
            self.trace.record(trace_scope.get(), plan.point, plan.kind.kind, plan.plugins, stamps, marks)

    async def _run_effects(self, plan: Plan, kwargs: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        stamps = [perf_counter()]
        marks: Marks = {}
        for index, step in enumerate(plan.steps):
            plugin, function, _, _, is_async = step
            try:
                args = _bind(step, kwargs)
                # asyncio.timeout, not wait_for: no extra task per implementation
                async with asyncio.timeout(plan.timeout):
                    if is_async:
                        await function(*args)
                    else:
                        await loop.run_in_executor(self._threads(), partial(function, *args))
            except TimeoutError:
                marks[index] = ("timeout", f"exceeded {plan.timeout}s")
                log.warning("effect %s: plugin %s timed out after %ss", plan.point, plugin, plan.timeout)
            except Exception as exc:
                marks[index] = ("error", repr(exc))
                log.warning("effect %s: plugin %s raised %r", plan.point, plugin, exc, exc_info=exc)
            stamps.append(perf_counter())
        self.trace.record(trace_scope.get(), plan.point, Kind.EFFECT, plan.plugins, stamps, marks)

    def _threads(self) -> ThreadPoolExecutor:
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
            for step in plan.wrappers:
                generator = step[1](*_bind(step, kwargs))
                next(generator)
                entered.append((step[0], generator))
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
