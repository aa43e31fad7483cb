"""The dispatcher follows each kind's rules (docs/architecture.md, "The four kinds"), with real plugins."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Generator
from typing import Any

import attrs
import pytest
from turnkit import (
    Dispatcher,
    DispatchError,
    NoResolutionError,
    PipelineError,
    PluginManager,
    PluginsConfig,
    ResolveError,
    trace_scope,
)
from turnkit_hookspecs import Deny, Message, Prompt, TextBlock, hookimpl

MESSAGE = Message.of("user", "hello")
TURN_ARGS: dict[str, Any] = {"ctx": None, "turn": None}


class Tagged:
    """Records its name in ``calls`` whenever one of its hooks runs; allows and changes nothing."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        self.calls.append(self.name)

    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        self.calls.append(self.name)


class TaggedFirst(Tagged):
    @hookimpl(tryfirst=True)
    def turn_inbound(self, message: Message) -> None:
        self.calls.append(self.name)


class TaggedLast(Tagged):
    @hookimpl(trylast=True)
    def turn_inbound(self, message: Message) -> None:
        self.calls.append(self.name)


_DISPATCHERS: weakref.WeakKeyDictionary[PluginManager, Dispatcher] = weakref.WeakKeyDictionary()


def dispatcher(manager: PluginManager) -> Dispatcher:
    """The one dispatcher of ``manager`` in a test (as an agent owns one of each)."""
    if manager not in _DISPATCHERS:
        _DISPATCHERS[manager] = Dispatcher(manager)
    return _DISPATCHERS[manager]


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager(PluginsConfig(effect_timeout=0.3))


# Plugins written the way authors write them: plain classes with decorated methods.


class AllowAll:
    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        return None


class DenyForbidden:
    @hookimpl
    def turn_authorize(self, message: Message) -> Deny | None:
        return Deny("forbidden word") if "forbidden" in message.text else None


class Exploding:
    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        raise RuntimeError("database down")


class Garbage:
    @hookimpl
    def turn_authorize(self, message: Message) -> str:
        return "yes please"


class Suffix:
    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    @hookimpl
    def turn_inbound(self, message: Message) -> Message:
        return attrs.evolve(message, blocks=[TextBlock(message.text + self.suffix)])


class AsyncSuffix(Suffix):
    @hookimpl
    async def turn_inbound(self, message: Message) -> Message:  # type: ignore[override]
        await asyncio.sleep(0)
        return attrs.evolve(message, blocks=[TextBlock(message.text + self.suffix)])


class Unchanged:
    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        return None


class WrongType:
    @hookimpl
    def turn_inbound(self, message: Message) -> str:
        return message.text.upper()


class RaisingPipeline:
    @hookimpl
    def turn_inbound(self, message: Message) -> Message:
        raise ValueError("cannot parse")


class Answer:
    def __init__(self, text: str | None, delay: float = 0.0) -> None:
        self.text, self.delay = text, delay

    @hookimpl
    async def turn_reply(self, prompt: Prompt) -> Message | None:
        await asyncio.sleep(self.delay)
        return None if self.text is None else Message.of("assistant", self.text)


class SyncAnswer:
    @hookimpl
    def turn_reply(self, prompt: Prompt) -> Message:
        return Message.of("assistant", "sync answer")


class FailingReply:
    @hookimpl
    def turn_reply(self, prompt: Prompt) -> Message:
        raise ConnectionError("model server unreachable")


PROMPT = Prompt(messages=(MESSAGE,))


async def test_guard_allows_when_every_implementation_allows(manager: PluginManager) -> None:
    manager.register(AllowAll(), "allow")
    manager.register(DenyForbidden(), "words")
    assert await dispatcher(manager).guard("turn_authorize", **TURN_ARGS, message=MESSAGE) is None


async def test_guard_first_deny_stops_and_names_the_plugin(manager: PluginManager) -> None:
    calls: list[str] = []
    # called in name order, whatever the order of registration
    manager.register(Tagged("last", calls), "z-last")
    manager.register(DenyForbidden(), "words")
    manager.register(Tagged("first", calls), "a-first")
    deny = await dispatcher(manager).guard(
        "turn_authorize", **TURN_ARGS, message=Message.of("user", "a forbidden word")
    )
    assert deny == Deny("forbidden word", plugin="words")
    assert calls == ["first"]  # "last" never ran: the deny stopped the guard


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (Exploding(), "bad failed: RuntimeError('database down')"),
        (Garbage(), "bad returned str, expected a Deny or None"),
    ],
    ids=["raises", "returns-garbage"],
)
async def test_a_failing_guard_denies(manager: PluginManager, plugin: object, reason: str) -> None:
    calls: list[str] = []
    manager.register(Tagged("after", calls), "z-after")
    manager.register(plugin, "bad")
    deny = await dispatcher(manager).guard("turn_authorize", **TURN_ARGS, message=MESSAGE)
    assert deny == Deny(reason, plugin="bad")
    assert calls == []
    outcome = [(r.plugin, r.outcome) for r in dispatcher(manager).trace.records()]  # type: ignore[attr-defined]
    assert outcome == [("bad", "error")]


async def test_guard_awaits_async_implementations(manager: PluginManager) -> None:
    class AsyncDeny:
        @hookimpl
        async def turn_authorize(self, message: Message) -> Deny:
            await asyncio.sleep(0)
            return Deny("not today")

    manager.register(AllowAll(), "allow")
    manager.register(AsyncDeny(), "later")
    deny = await dispatcher(manager).guard("turn_authorize", **TURN_ARGS, message=MESSAGE)
    assert deny == Deny("not today", plugin="later")


async def test_pipeline_threads_the_value_through_sync_and_async_steps(manager: PluginManager) -> None:
    manager.register(Suffix(" one"), "one")
    manager.register(Unchanged(), "noop")
    manager.register(AsyncSuffix(" two"), "two")
    result = await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    # name order, whatever the order of registration
    assert result.text == "hello one two"
    assert [(r.plugin, r.outcome) for r in dispatcher(manager).trace.records()] == [  # type: ignore[attr-defined]
        ("noop", "ok"),
        ("one", "value"),
        ("two", "value"),
    ]


async def test_pipeline_returns_the_input_when_nothing_changes(manager: PluginManager) -> None:
    manager.register(Unchanged(), "noop")
    assert await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE) is MESSAGE


async def test_pipeline_wrong_type_names_the_plugin(manager: PluginManager) -> None:
    manager.register(Suffix("!"), "fine")
    manager.register(WrongType(), "shouty")
    with pytest.raises(PipelineError) as caught:
        await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert caught.value.plugin == "shouty"
    assert "'shouty' returned str, expected Message" in str(caught.value)


async def test_a_raising_pipeline_step_aborts_with_the_plugin_named(manager: PluginManager) -> None:
    calls: list[str] = []
    manager.register(Tagged("after", calls), "z-after")
    manager.register(RaisingPipeline(), "parser")
    with pytest.raises(PipelineError, match="'parser' raised ValueError"):
        await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert calls == []


async def test_resolve_first_answer_wins_and_async_none_falls_through(manager: PluginManager) -> None:
    manager.register(SyncAnswer(), "z-fallback")
    manager.register(Answer("async answer"), "model")
    manager.register(Answer(None), "declines")
    reply = await dispatcher(manager).resolve("turn_reply", **TURN_ARGS, prompt=PROMPT)
    assert reply.text == "async answer"
    assert [(r.plugin, r.outcome) for r in dispatcher(manager).trace.records()] == [  # type: ignore[attr-defined]
        ("declines", "ok"),
        ("model", "value"),
    ]


async def test_resolve_with_no_answer_names_the_point(manager: PluginManager) -> None:
    manager.register(Answer(None), "declines")
    with pytest.raises(NoResolutionError, match="'turn_reply' got no answer \\(tried: declines\\)"):
        await dispatcher(manager).resolve("turn_reply", **TURN_ARGS, prompt=PROMPT)


async def test_resolve_with_no_implementation_names_the_point(manager: PluginManager) -> None:
    with pytest.raises(NoResolutionError, match="'session_compress'.*no implementation"):
        await dispatcher(manager).resolve("session_compress", ctx=None, messages=[], reason="full")


async def test_a_raising_resolve_propagates_as_the_points_error(manager: PluginManager) -> None:
    manager.register(SyncAnswer(), "z-fallback")
    manager.register(FailingReply(), "remote")
    with pytest.raises(ResolveError, match="'turn_reply': plugin 'remote' raised ConnectionError") as caught:
        await dispatcher(manager).resolve("turn_reply", **TURN_ARGS, prompt=PROMPT)
    assert isinstance(caught.value.__cause__, ConnectionError)


async def test_async_durations_are_measured_after_awaiting(manager: PluginManager) -> None:
    manager.register(Answer("slow", delay=0.05), "slow")
    await dispatcher(manager).resolve("turn_reply", **TURN_ARGS, prompt=PROMPT)
    (record,) = dispatcher(manager).trace.records()  # type: ignore[attr-defined]
    assert record.duration >= 0.05


async def test_calls_are_traced_under_the_current_scope(manager: PluginManager) -> None:
    manager.register(AllowAll(), "allow")
    token = trace_scope.set("turn-7")
    try:
        await dispatcher(manager).guard("turn_authorize", **TURN_ARGS, message=MESSAGE)
    finally:
        trace_scope.reset(token)
    await dispatcher(manager).guard("turn_authorize", **TURN_ARGS, message=MESSAGE)
    sink = dispatcher(manager).trace
    assert [r.scope for r in sink.records()] == ["turn-7", None]  # type: ignore[attr-defined]
    assert [r.point for r in sink.records("turn-7")] == ["turn_authorize"]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- ordering


def _order_plugins(calls: list[str]) -> list[tuple[str, object]]:
    return [
        ("late", TaggedLast("late", calls)),
        ("b", Tagged("b", calls)),
        ("early", TaggedFirst("early", calls)),
        ("a", Tagged("a", calls)),
    ]


async def test_order_is_tryfirst_then_latest_registered_then_trylast() -> None:
    calls: list[str] = []
    manager = PluginManager()
    for name, plugin in _order_plugins(calls):
        manager.register(plugin, name)
    await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert calls == ["early", "a", "b", "late"]
    assert [i.plugin for i in manager.implementations("turn_inbound")] == calls


async def test_config_order_override_puts_listed_plugins_first() -> None:
    calls: list[str] = []
    manager = PluginManager(PluginsConfig(order={"turn_inbound": ["late", "b"]}))
    for name, plugin in _order_plugins(calls):
        manager.register(plugin, name)
    await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert calls == ["late", "b", "early", "a"]


async def test_order_override_problems_are_reported() -> None:
    manager = PluginManager(PluginsConfig(order={"turn_inbound": ["ghost"], "turn_inbund": ["x"]}))
    assert manager.order_problems() == [
        "plugins.order.turn_inbound: 'ghost' does not implement it here",
        "plugins.order.turn_inbund: no such point",
    ]


async def test_plans_follow_registration_changes(manager: PluginManager) -> None:
    manager.register(Suffix("!"), "bang")
    assert (await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)).text == "hello!"
    manager.unregister("bang")
    assert (await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)).text == "hello"


async def test_wrappers_run_outermost_and_may_replace_the_result(manager: PluginManager) -> None:
    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def turn_inbound(self, message: Message) -> Generator[None, Message, Message]:
            seen.append(f"before {message.text}")
            result = yield
            seen.append(f"after {result.text}")
            return attrs.evolve(result, blocks=[TextBlock(result.text + " (wrapped)")])

    manager.register(Wrapper(), "wrap")
    manager.register(Suffix("!"), "bang")
    result = await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert seen == ["before hello", "after hello!"]
    assert result.text == "hello! (wrapped)"


async def test_wrapper_sees_the_inner_error(manager: PluginManager) -> None:
    seen: list[BaseException] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def turn_inbound(self) -> Generator[None, Message, Message]:
            try:
                return (yield)
            except PipelineError as exc:
                seen.append(exc)
                raise

    manager.register(Wrapper(), "wrap")
    manager.register(RaisingPipeline(), "parser")
    with pytest.raises(PipelineError):
        await dispatcher(manager).pipeline("turn_inbound", **TURN_ARGS, message=MESSAGE)
    assert len(seen) == 1 and seen[0].plugin == "parser"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- effects


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        self.seen.append((threading.current_thread().name, reply.text))


class AsyncRecorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    async def turn_completed(self, reply: Message) -> None:
        self.seen.append(reply.text)


class Hangs:
    @hookimpl
    async def turn_completed(self) -> None:
        await asyncio.sleep(30)


class HangsSync:
    @hookimpl
    def turn_completed(self) -> None:
        time.sleep(2)


class Breaks:
    @hookimpl
    def turn_completed(self) -> None:
        raise KeyError("missing column")


EFFECT_ARGS: dict[str, Any] = {
    "ctx": None,
    "turn": None,
    "message": MESSAGE,
    "reply": Message.of("assistant", "hi"),
}


async def test_effects_all_run_despite_failures_and_hangs(manager: PluginManager) -> None:
    first, last = Recorder(), AsyncRecorder()
    manager.register(last, "last")
    manager.register(Breaks(), "breaks")
    manager.register(Hangs(), "hangs")
    manager.register(HangsSync(), "hangs-sync")
    manager.register(first, "first")
    started = time.perf_counter()
    await dispatcher(manager).effect("turn_completed", **EFFECT_ARGS)
    assert time.perf_counter() - started < 0.1  # the caller does not wait for effects
    await dispatcher(manager).drain()
    assert first.seen[0][1] == "hi" and first.seen[0][0].startswith("turnkit-effect")
    assert last.seen == ["hi"]
    outcomes = {r.plugin: (r.outcome, r.error) for r in dispatcher(manager).trace.records()}  # type: ignore[attr-defined]
    assert outcomes["first"] == ("ok", None)
    assert outcomes["hangs-sync"] == ("timeout", "exceeded 0.3s")
    assert outcomes["hangs"] == ("timeout", "exceeded 0.3s")
    assert outcomes["breaks"] == ("error", "KeyError('missing column')")
    assert outcomes["last"] == ("ok", None)
    await dispatcher(manager).aclose()


async def test_effect_timeout_per_point_from_config() -> None:
    manager = PluginManager(PluginsConfig(effect_timeout=10.0, timeouts={"turn_completed": 0.05}))
    manager.register(Hangs(), "hangs")
    await dispatcher(manager).effect("turn_completed", **EFFECT_ARGS)
    await dispatcher(manager).drain()
    (record,) = dispatcher(manager).trace.records()  # type: ignore[attr-defined]
    assert record.outcome == "timeout" and 0.05 <= record.duration < 1.0


async def test_effect_arguments_are_checked_at_the_call(manager: PluginManager) -> None:
    manager.register(Recorder(), "rec")
    with pytest.raises(DispatchError, match=r"'turn_completed' dispatched without its argument\(s\) reply"):
        await dispatcher(manager).effect("turn_completed", ctx=None, turn=None, message=MESSAGE)


# ---------------------------------------------------------------- misuse


async def test_dispatching_with_the_wrong_kind_is_an_error(manager: PluginManager) -> None:
    with pytest.raises(DispatchError, match="'turn_inbound' is a pipeline point, not a guard"):
        await dispatcher(manager).guard("turn_inbound", **TURN_ARGS, message=MESSAGE)


async def test_call_dispatches_by_declared_kind(manager: PluginManager) -> None:
    manager.register(DenyForbidden(), "words")
    manager.register(Suffix("?"), "q")
    deny = await dispatcher(manager).call(
        "turn_authorize", **TURN_ARGS, message=Message.of("user", "forbidden")
    )
    assert deny is not None and deny.plugin == "words"
    assert (await dispatcher(manager).call("turn_inbound", **TURN_ARGS, message=MESSAGE)).text == "hello?"


async def test_effects_beyond_the_queue_bound_are_dropped_and_traced() -> None:
    manager = PluginManager(PluginsConfig(effect_timeout=0.2, effect_workers=1, effect_queue=1))
    manager.register(Hangs(), "hangs")
    for _ in range(3):  # one running, one waiting, one over the bound
        await dispatcher(manager).effect("turn_completed", **EFFECT_ARGS)
        await asyncio.sleep(0)
    await dispatcher(manager).drain()
    outcomes = sorted(r.outcome for r in dispatcher(manager).trace.records())  # type: ignore[attr-defined]
    assert outcomes == ["dropped", "timeout", "timeout"]
    assert dispatcher(manager).dropped == 1
    await dispatcher(manager).aclose()


def test_effects_run_when_the_dispatcher_moves_to_a_new_event_loop() -> None:
    manager = PluginManager()
    recorder = AsyncRecorder()
    manager.register(recorder, "rec")

    async def fire_and_drain() -> None:
        await dispatcher(manager).effect("turn_completed", **EFFECT_ARGS)
        await asyncio.wait_for(dispatcher(manager).drain(), 5)  # fail, rather than hang, if nobody consumes

    asyncio.run(fire_and_drain())
    asyncio.run(fire_and_drain())  # the first loop and its consumers are gone
    assert recorder.seen == ["hi", "hi"]
