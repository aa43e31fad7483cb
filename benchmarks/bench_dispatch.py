"""Dispatch cost per kind against a plain pluggy call over the same implementations.

Run: ``python benchmarks/bench_dispatch.py`` (``--quick`` for fewer rounds).

Both sides run in one process, inside one event loop, over the *same*
implementation objects: the baseline is ``pm.hook.<point>(**kwargs)`` on a
bare pluggy ``PluginManager`` (for async implementations: that call, then
awaiting each returned coroutine in turn). Ours is the kind-aware dispatcher
with tracing on. The printed ratio is ours / pluggy's time per dispatch; the
bar (docs/architecture.md, "Bars") is ratio <= 1.0 with 10 sync implementations.

Effects are started in the background by design, so two ratios are shown:
the caller's cost (``effect()`` returning) and the cost until every
implementation has run (``effect()`` + ``drain()``; sync effects hop to a
worker thread so that a hanging one cannot block the agent).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy
from turnkit import Dispatcher, PluginManager, PluginsConfig
from turnkit_hookspecs import CORE_HOOKSPECS, PROJECT_NAME, Message, Prompt, hookimpl

MESSAGE = Message.of("user", "hello")
REPLY = Message.of("assistant", "hi")
PROMPT = Prompt(messages=(MESSAGE,))
ARGS: dict[str, dict[str, Any]] = {
    "turn_authorize": {"ctx": None, "turn": None, "message": MESSAGE},
    "turn_inbound": {"ctx": None, "turn": None, "message": MESSAGE},
    "turn_reply": {"ctx": None, "turn": None, "prompt": PROMPT},
    "turn_completed": {"ctx": None, "turn": None, "message": MESSAGE, "reply": REPLY},
}
KINDS = {
    "guard": "turn_authorize",
    "pipeline": "turn_inbound",
    "resolve": "turn_reply",
    "effect": "turn_completed",
}


class SyncPlugin:
    """Does nothing, as cheaply as a plugin can: the cost measured is dispatch."""

    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        return None

    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        return None

    @hookimpl
    def turn_reply(self, prompt: Prompt) -> None:
        return None

    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        return None


class AsyncPlugin:
    @hookimpl
    async def turn_authorize(self, message: Message) -> None:
        return None

    @hookimpl
    async def turn_inbound(self, message: Message) -> None:
        return None

    @hookimpl
    async def turn_reply(self, prompt: Prompt) -> None:
        return None

    @hookimpl
    async def turn_completed(self, reply: Message) -> None:
        return None


class Answers:
    """Called last for resolve so both sides walk every implementation."""

    @hookimpl(trylast=True)
    def turn_reply(self, prompt: Prompt) -> Message:
        return REPLY


def managers(count: int, plugin_type: type, rounds: int) -> tuple[pluggy.PluginManager, PluginManager]:
    plain = pluggy.PluginManager(PROJECT_NAME)
    for module in CORE_HOOKSPECS:
        plain.add_hookspecs(module)
    ours = PluginManager(PluginsConfig(effect_queue=rounds + 1))  # room for one repeat's effects
    plugins = [plugin_type() for _ in range(count)]
    for index, plugin in enumerate(plugins):
        plain.register(plugin, name=f"p{index:03}")
        ours.register(plugin, name=f"p{index:03}")
    plain.register(Answers(), name="answers")
    ours.register(Answers(), name="answers")
    return plain, ours


async def per_call(
    body: Callable[[], Awaitable[None]], rounds: int, repeat: int, settle: Callable[[], Awaitable[None]]
) -> float:
    """Best-of-``repeat`` seconds per call of ``body`` over ``rounds`` calls.

    ``settle`` runs between repeats, untimed (it drains queued effects).
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            await body()
        best = min(best, (time.perf_counter() - start) / rounds)
        await settle()
    return best


async def measure(
    kind: str, count: int, is_async: bool, rounds: int, repeat: int
) -> list[tuple[str, float, float]]:
    point = KINDS[kind]
    plain, ours = managers(count, AsyncPlugin if is_async else SyncPlugin, rounds)
    caller = getattr(plain.hook, point)
    dispatcher = Dispatcher(ours)
    dispatch = getattr(dispatcher, kind)
    kwargs = ARGS[point]

    if is_async:

        async def baseline() -> None:
            for result in caller(**kwargs):
                if asyncio.iscoroutine(result):
                    await result

    else:

        async def baseline() -> None:
            caller(**kwargs)

    async def turnkit() -> None:
        await dispatch(point, **kwargs)

    async def turnkit_until_done() -> None:
        await dispatch(point, **kwargs)
        await dispatcher.drain()

    settle = dispatcher.drain
    base = await per_call(baseline, rounds, repeat, settle)
    rows = [("", base, await per_call(turnkit, rounds, repeat, settle))]
    if kind == "effect":
        done_rounds = max(rounds // 20, 20)
        rows.append((" until done", base, await per_call(turnkit_until_done, done_rounds, repeat, settle)))
    assert dispatcher.dropped == 0, "the benchmark must not measure dropped effects"
    await dispatcher.aclose()
    return rows


async def main(quick: bool) -> None:
    repeat = 3 if quick else 7
    print(f"{'kind':<22}{'impls':>8}{'pluggy µs':>12}{'turnkit µs':>12}{'ratio':>8}")
    for kind in KINDS:
        for count, is_async in ((1, False), (10, False), (100, False), (10, True)):
            rounds = 2000 if quick else 10000
            rounds = max(rounds // max(count // 10, 1), 200)
            for suffix, base, ours in await measure(kind, count, is_async, rounds, repeat):
                label = f"{count} {'async' if is_async else 'sync'}"
                print(
                    f"{kind + suffix:<22}{label:>8}{base * 1e6:>12.2f}{ours * 1e6:>12.2f}{ours / base:>8.2f}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    asyncio.run(main(parser.parse_args().quick))
