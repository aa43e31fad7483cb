"""Kind-aware dispatch of extension points (docs/architecture.md, "The four kinds").

One coroutine per kind. Implementations may be ``def`` or ``async def``;
coroutines are awaited one at a time, in call order, which pluggy's own
``firstresult`` cannot do. Every call is traced: point, kind, plugin,
duration (measured after awaiting) and outcome.

No implementation can hold a turn, or the agent, for ever:

* every call has its point's time limit (``[plugins]`` timeouts); the
  kind's rule decides what running out means (a guard denies, a pipeline or
  resolve fails the turn naming the plugin, an effect is traced);
* an ``async def`` one is awaited under that limit;
* a plugin's ``def`` one runs on a worker thread (:mod:`turnkit.workers`)
  until it has proved fast (``inline_after`` calls in a row under
  :data:`FAST`); then on the event loop, the fast path, which costs no more
  than pluggy's own call. If it then blocks the loop longer than
  ``[plugins] watchdog``, it goes back to a thread for good (and the
  :mod:`turnkit.watchdog` names it while it blocks). The runtime's own
  defaults and the services own the main paths and always run on the loop.

Hot-path notes: per point a *plan* (:mod:`turnkit.plan`) is built once and
reused until the registry's generation changes; each call costs one
``perf_counter`` and one list append, and the trace sink gets one batch per
dispatch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from time import perf_counter
from types import CodeType
from typing import Any

import attrs
from turnkit_hookspecs import Deny, Kind

from .errors import DispatchError, PluginHung, PluginTimeout
from .plan import AWAITED, INLINE, THREADED, Plan, bind, step
from .registry import Implementation, Registry
from .rules import RULES, Marks
from .tracing import MemoryTraceSink, TraceSink, trace_scope
from .workers import Workers

log = logging.getLogger("turnkit.dispatch")

#: A plugin's ``def`` implementation moves to the event loop after ``inline_after``
#: calls in a row, each faster than this (seconds) on its thread.
FAST = 0.001

#: An effect dispatch waiting for a consumer: its plan, its arguments, its trace scope.
Queued = tuple[Plan, dict[str, Any], str | None]


class Dispatcher:
    """Dispatches the points of one :class:`~turnkit.registry.Registry` (the plugin manager)."""

    def __init__(self, registry: Registry, trace_sink: TraceSink | None = None) -> None:
        self._registry = registry
        self.trace: TraceSink = trace_sink if trace_sink is not None else MemoryTraceSink()
        self._plans: dict[str, Plan] = {}
        self._generation = -1
        self._queue: asyncio.Queue[Queued] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumers: list[asyncio.Task[None]] = []
        self._call_threads: Workers | None = None
        self._effect_threads: Workers | None = None
        #: (point, plugin) of ``def`` implementations on probation: fast calls in a row so far.
        self._fast: dict[tuple[str, str], int] = {}
        #: Plugin implementations that earned the event loop, and ones sent back to a thread.
        self._inline: set[tuple[str, str]] = set()
        self._threaded: set[tuple[str, str]] = set()
        #: Implementation code → (plugin, point), for the watchdog to name whoever blocks the loop.
        self.owners: dict[CodeType, tuple[str, str]] = {}
        #: Effect dispatches dropped because the queue was full, since start.
        self.dropped = 0
        self._dropping = False

    @property
    def effects_waiting(self) -> int:
        """Effect dispatches queued and not yet taken by a worker."""
        return self._queue.qsize() if self._queue is not None else 0

    # ------------------------------------------------------------------ plans

    def plan(self, point: str) -> Plan:
        """The cached plan of ``point`` (rebuilt after any registration change)."""
        if self._generation != self._registry.generation:
            self._plans.clear()
            self._generation = self._registry.generation
        plan = self._plans.get(point)
        if plan is None:
            plan = self._plans[point] = self._build(point)
        return plan

    def _build(self, point: str) -> Plan:
        kind = self._registry.point(point)
        config = self._registry.config
        impls = self._registry.implementations(point)
        steps = tuple(
            step(i.plugin, i.function, i.argnames, self._runs(point, i)) for i in impls if not i.wrapper
        )
        wrappers = tuple(step(i.plugin, i.function, i.argnames, INLINE) for i in impls if i.wrapper)
        for impl in impls:
            code = getattr(getattr(impl.function, "__func__", impl.function), "__code__", None)
            if isinstance(code, CodeType):
                self.owners[code] = (impl.plugin, point)
        needed = frozenset(name for i in impls for name in i.argnames).union(
            [kind.value] if kind.value else []
        )
        default = {
            Kind.GUARD: config.guard_timeout,
            Kind.PIPELINE: config.pipeline_timeout,
            Kind.RESOLVE: config.resolve_timeout,
            Kind.EFFECT: config.effect_timeout,
        }[kind.kind]
        timeout = config.timeouts.get(point, kind.timeout or default)
        return Plan(point, kind, steps, tuple(s[0] for s in steps), wrappers, needed, timeout)

    def _runs(self, point: str, impl: Implementation) -> int:
        """Where ``impl`` runs now (effects' ``def`` ones always run on a thread: see _run_effects)."""
        if impl.is_async:
            return AWAITED
        key = (point, impl.plugin)
        if impl.trusted or key in self._inline:
            return INLINE
        if key not in self._threaded and self._registry.config.inline_after == 0:
            self._inline.add(key)
            return INLINE
        return THREADED

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

        An implementation that raises, times out, or returns anything but
        ``None``, ``True`` or a ``Deny``, denies (fail closed); the failure is traced.
        """
        plan = self._checked(point, Kind.GUARD, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    def pipeline(self, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Thread the point's value through every implementation; ``None`` keeps it.

        Raises :class:`PipelineError` naming the plugin when one raises, times
        out or returns a value of the wrong type.
        """
        plan = self._checked(point, Kind.PIPELINE, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    def resolve(self, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Return the first non-``None`` answer; raise :class:`NoResolutionError` if none.

        An implementation that raises or times out fails the point with :class:`ResolveError`.
        """
        plan = self._checked(point, Kind.RESOLVE, kwargs)
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    def resolve_by(self, plugin: str, point: str, /, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """``resolve``, asking ``plugin``'s implementation alone (a tool is run by the plugin offering it).

        With no implementation of ``plugin``, raises :class:`NoResolutionError` like a resolve nobody answers.
        """
        plan = self._checked(point, Kind.RESOLVE, kwargs)
        steps = tuple(s for s in plan.steps if s[0] == plugin)
        plan = attrs.evolve(plan, steps=steps, plugins=tuple(s[0] for s in steps))
        return self._wrapped(plan, kwargs, self._run) if plan.wrappers else self._run(plan, kwargs)

    async def effect(self, point: str, /, **kwargs: Any) -> None:
        """Queue every implementation to run in the background and return at once.

        ``effect_workers`` consumers take queued dispatches in order; each runs
        its implementations one after another in call order, each under the
        point's timeout: ``async def`` ones on the loop, ``def`` ones on a
        worker thread (so a hanging one cannot block the agent, and its thread
        is replaced). Failures and timeouts are logged and traced, never
        raised. When ``effect_queue`` dispatches are already waiting, this one
        is dropped and traced as ``dropped``: effects are best-effort, memory
        is bounded. :meth:`drain` waits for everything queued so far.
        """
        plan = self._checked(point, Kind.EFFECT, kwargs)
        if not plan.steps and not plan.wrappers:
            return
        loop = asyncio.get_running_loop()
        queue = self._queue if self._queue is not None and self._loop is loop else self._start_consumers(loop)
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
        """Drain the effects, stop the consumers and let the worker threads go."""
        await self.drain()
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers, self._queue = [], None
        for threads in (self._call_threads, self._effect_threads):
            if threads is not None:
                threads.close()
        self._call_threads = self._effect_threads = None

    def hung(self) -> dict[str, int]:
        """Plugins with calls still running on abandoned threads, and how many."""
        counts: dict[str, int] = {}
        for threads in (self._call_threads, self._effect_threads):
            for plugin, count in (threads.hung() if threads is not None else {}).items():
                counts[plugin] = counts.get(plugin, 0) + count
        return counts

    def _start_consumers(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Queued]:
        """Start the consumers on ``loop``.

        Also called when the dispatcher is used from a new event loop (a
        script calling ``asyncio.run`` twice): the old loop's consumers are
        gone with it, and a queue nobody reads would make ``drain`` hang.
        """
        config = self._registry.config
        queue: asyncio.Queue[Queued] = asyncio.Queue(maxsize=config.effect_queue)
        self._consumers = [loop.create_task(self._consume(queue)) for _ in range(config.effect_workers)]
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
        ``marks`` under the index of the call just stamped. A point nobody
        implements has no call to trace.
        """
        rules = RULES[plan.kind.kind]
        if not plan.steps:
            return rules.exhausted(plan, kwargs)
        slow = self._registry.config.watchdog
        stamps = [perf_counter()]
        marks: Marks = {}
        try:
            for plugin, function, mode, getter, runs in plan.steps:
                try:
                    if runs != THREADED:
                        if mode == 1:
                            result = function(kwargs[getter])
                        else:
                            result = function(*getter(kwargs)) if mode else function()
                        if runs == AWAITED:  # its first step here, as in _awaited (no frame)
                            try:
                                pending = result.send(None)
                            except StopIteration as finished:
                                result = finished.value
                            else:
                                result = await self._resumed(plan, plugin, result, pending)
                    else:
                        args = () if mode == 0 else (kwargs[getter],) if mode == 1 else getter(kwargs)
                        result = await self._on_thread(plan, plugin, function, args)
                except Exception as exc:
                    stamps.append(perf_counter())
                    return rules.failed(plan, plugin, exc, marks, len(stamps) - 2)
                stamp = perf_counter()
                if runs == INLINE and stamp - stamps[-1] > slow:
                    self._blocked(plan.point, plugin, stamp - stamps[-1])
                stamps.append(stamp)
                if result is not None:
                    done, value = rules.answered(plan, kwargs, plugin, result, marks, len(stamps) - 2)
                    if done:
                        return value
            return rules.exhausted(plan, kwargs)
        finally:
            self.trace.record(trace_scope.get(), plan.point, plan.kind.kind, plan.plugins, stamps, marks)

    async def _awaited(self, plan: Plan, plugin: str, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Await an ``async def`` implementation under the point's time limit.

        Most have nothing to wait for and finish in their first step: that
        step runs here and now, with no timer (setting one costs more than
        such a call). Only one that suspends gets a timer, and its coroutine
        goes on under it (:class:`_Resumed`).
        """
        try:
            pending = coroutine.send(None)
        except StopIteration as done:
            return done.value
        return await self._resumed(plan, plugin, coroutine, pending)

    async def _resumed(
        self, plan: Plan, plugin: str, coroutine: Coroutine[Any, Any, Any], pending: Any
    ) -> Any:
        """The rest of a coroutine that suspended in its first step, under the point's time limit."""
        limit = asyncio.timeout(plan.timeout)
        try:
            async with limit:
                return await _Resumed(coroutine, pending)
        except TimeoutError:
            if limit.expired():
                raise PluginTimeout(plugin, plan.point, plan.timeout) from None
            raise

    async def _on_thread(
        self, plan: Plan, plugin: str, function: Callable[..., Any], args: Sequence[Any]
    ) -> Any:
        """Run a plugin's ``def`` implementation on a call thread under the point's time limit."""
        if self._call_threads is None:
            config = self._registry.config
            self._call_threads = Workers(config.call_workers, config.hung_limit, "call")
        key = (plan.point, plugin)
        result, took = await self._threaded_call(self._call_threads, plan, plugin, function, args)
        if key not in self._threaded:
            fast = self._fast.get(key, 0) + 1 if took < FAST else 0
            if fast >= self._registry.config.inline_after:
                self._fast.pop(key, None)
                self._inline.add(key)
                self._plans.pop(plan.point, None)
                log.debug("plugin %r runs %s on the event loop from now on", plugin, plan.point)
            else:
                self._fast[key] = fast
        return result

    async def _threaded_call(
        self, threads: Workers, plan: Plan, plugin: str, function: Callable[..., Any], args: Sequence[Any]
    ) -> tuple[Any, float]:
        future = threads.submit(plugin, function, args)
        limit = asyncio.timeout(plan.timeout)
        try:
            async with limit:
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if not limit.expired():
                raise
            threads.abandon(future)
            self._threaded.add((plan.point, plugin))
            log.warning(
                "%s %s: plugin %r timed out after %gs; its thread is left to it and replaced",
                plan.kind.kind,
                plan.point,
                plugin,
                plan.timeout,
            )
            raise PluginTimeout(plugin, plan.point, plan.timeout) from None

    def _blocked(self, point: str, plugin: str, seconds: float) -> None:
        """A call on the loop took too long: a plugin's goes back to a thread for good."""
        key = (point, plugin)
        if key not in self._inline:  # the runtime's or a service's own: the watchdog reports it
            return
        self._inline.discard(key)
        self._threaded.add(key)
        self._plans.pop(point, None)
        log.warning(
            "plugin %r blocked the event loop for %.3fs at %s; its calls of it run on a thread from now on",
            plugin,
            seconds,
            point,
        )

    async def _run_effects(self, plan: Plan, kwargs: dict[str, Any]) -> None:
        stamps = [perf_counter()]
        marks: Marks = {}
        for index, effect_step in enumerate(plan.steps):
            plugin, function, _, _, runs = effect_step
            try:
                args = bind(effect_step, kwargs)
                if runs == AWAITED:
                    await self._awaited(plan, plugin, function(*args))
                else:
                    if self._effect_threads is None:
                        config = self._registry.config
                        self._effect_threads = Workers(config.effect_workers, config.hung_limit, "effect")
                    await self._threaded_call(self._effect_threads, plan, plugin, function, args)
            except PluginTimeout:
                marks[index] = ("timeout", f"exceeded {plan.timeout}s")
                log.warning("effect %s: plugin %s timed out after %ss", plan.point, plugin, plan.timeout)
            except PluginHung as exc:
                marks[index] = ("error", str(exc))
                log.warning("effect %s: plugin %s %s", plan.point, plugin, exc)
            except Exception as exc:
                marks[index] = ("error", repr(exc))
                log.warning("effect %s: plugin %s raised %r", plan.point, plugin, exc, exc_info=exc)
            stamps.append(perf_counter())
        self.trace.record(trace_scope.get(), plan.point, Kind.EFFECT, plan.plugins, stamps, marks)

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
        Wrappers are generators and run on the loop (the watchdog watches them).
        """
        entered: list[tuple[str, Generator[None, Any, Any]]] = []
        result: Any = None
        error: BaseException | None = None
        try:
            for wrapper in plan.wrappers:
                generator = wrapper[1](*bind(wrapper, kwargs))
                next(generator)
                entered.append((wrapper[0], generator))
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


class _Resumed:
    """The rest of a coroutine whose first step already ran, for the task that ran it to await.

    That step yielded ``pending`` (the future the coroutine waits for, or
    ``None`` for a bare yield) to nobody. Awaiting this hands it to the
    running task, exactly as ``await coroutine`` would have, and from then
    on passes what the task sends or throws (a cancellation, when the time
    limit runs out) into the coroutine: ``yield from``, resumed half-way.
    """

    __slots__ = ("_coroutine", "_pending")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coroutine = coroutine
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, pending = self._coroutine, self._pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:
                try:
                    pending = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
                continue
            try:
                pending = coroutine.send(sent)
            except StopIteration as done:
                return done.value
