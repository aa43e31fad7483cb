"""Real agents on a SQLite file for integration tests, and small recording plugins.

``running_agent`` builds the agent exactly as an application embedding
turnkit does (a parsed config, a :class:`~turnkit.manager.PluginManager`
with the given plugins and services registered, ``async with Agent``),
without entry point discovery::

    async with running_agent(tmp_path, plugins={"spy": PromptSpy()}, turns={"history": 10}) as agent:
        result = await agent.send("hi")

Keyword tables (``turns=``, ``model=``, ``agent=`` …) become the
configuration's top-level tables, except ``[plugins]`` and ``[services]``,
which are ``plugins_table=`` and ``services_table=`` (``plugins=`` and
``services=`` are the objects to register); the store is ``tmp_path / db``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from turnkit.agent import Agent
from turnkit.config import Config, parse_config
from turnkit.manager import PluginManager
from turnkit_hookspecs import Message, Prompt, SessionExtensionContext, TurnInfo, hookimpl

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


def agent_config(tmp_path: Path, db: str = "t.db", **tables: Any) -> Config:
    """A configuration whose store is the SQLite file ``tmp_path / db``."""
    store = {"url": str(tmp_path / db), **tables.pop("store", {})}
    return parse_config({"store": store, **tables})


def build_agent(
    tmp_path: Path,
    *,
    plugins: Mapping[str, object] | None = None,
    services: Iterable[object] = (),
    db: str = "t.db",
    plugins_table: Mapping[str, Any] | None = None,
    services_table: Mapping[str, Any] | None = None,
    tracer_provider: TracerProvider | None = None,
    **tables: Any,
) -> Agent:
    """An agent (not started) with ``plugins`` (name → object) and ``services`` registered.

    ``tracer_provider`` is the application's OpenTelemetry provider the agent hands its spans.
    """
    for name, table in (("plugins", plugins_table), ("services", services_table)):
        if table is not None:
            tables[name] = table
    config = agent_config(tmp_path, db, **tables)
    manager = PluginManager(config.plugins)
    for service in services:  # first, as discovery does: they declare points plugins implement
        manager.add_service(service)
    for name, plugin in (plugins or {}).items():
        manager.register(plugin, name)
    return Agent(config, manager=manager, tracer_provider=tracer_provider)


@asynccontextmanager
async def running_agent(tmp_path: Path, **options: Any) -> AsyncIterator[Agent]:
    """A started agent (same arguments as :func:`build_agent`), stopped when the block ends."""
    async with build_agent(tmp_path, **options) as agent:
        yield agent


def texts(messages: Iterable[Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of messages or stored messages, for comparing histories at a glance."""
    found = []
    for item in messages:
        message = item if isinstance(item, Message) else item.message
        found.append((message.role, message.text))
    return found


class ModelSpy:
    """Sees every prompt the model is asked (``turn_reply`` first, answering nothing)."""

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    @hookimpl(tryfirst=True)
    def turn_reply(self, prompt: Prompt) -> None:
        self.prompts.append(prompt)


class PromptSpy:
    """Records every prompt (``turn_prompt``), by turn number, as ``(role, text)`` pairs."""

    def __init__(self) -> None:
        self.prompts: dict[tuple[str, int], list[tuple[str, str]]] = {}

    @hookimpl
    def turn_prompt(self, turn: TurnInfo, prompt: Prompt) -> None:
        self.prompts[turn.session_id, turn.number] = texts(prompt.messages)

    def of(self, turn: TurnInfo) -> list[tuple[str, str]]:
        """The prompt turn ``turn`` assembled."""
        return self.prompts[turn.session_id, turn.number]


class EffectRecorder:
    """Records the calls of the turn and session effect points as ``(point, arguments)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def named(self, point: str) -> list[dict[str, Any]]:
        """The arguments of each call of ``point``, in order."""
        return [arguments for name, arguments in self.calls if name == point]

    @hookimpl
    def turn_completed(self, ctx: SessionExtensionContext, turn: TurnInfo, reply: Message) -> None:
        self.calls.append(("turn_completed", {"ctx": ctx, "turn": turn, "reply": reply}))

    @hookimpl
    def turn_denied(self, turn: TurnInfo, deny: Any) -> None:
        self.calls.append(("turn_denied", {"turn": turn, "deny": deny}))

    @hookimpl
    def turn_failed(self, turn: TurnInfo, error: str) -> None:
        self.calls.append(("turn_failed", {"turn": turn, "error": error}))

    @hookimpl
    def session_forked(self, ctx: SessionExtensionContext, child: Any, options: Any) -> None:
        self.calls.append(("session_forked", {"ctx": ctx, "child": child, "options": options}))

    @hookimpl
    def session_merged(self, ctx: SessionExtensionContext, child: Any, summary: Message) -> None:
        self.calls.append(("session_merged", {"ctx": ctx, "child": child, "summary": summary}))

    @hookimpl
    def session_abandoned(self, ctx: SessionExtensionContext, child: Any) -> None:
        self.calls.append(("session_abandoned", {"ctx": ctx, "child": child}))

    @hookimpl
    def session_compressed(
        self, ctx: SessionExtensionContext, summary: Message, compressed: int, reason: str
    ) -> None:
        self.calls.append(
            ("session_compressed", {"summary": summary, "compressed": compressed, "reason": reason})
        )

    @hookimpl
    def session_context_contributed(self, ctx: SessionExtensionContext, key: str, value: str) -> None:
        self.calls.append(("session_context_contributed", {"ctx": ctx, "key": key, "value": value}))


#: What an :class:`Actor` is asked to do with the ``ctx`` it receives.
Action = Callable[[SessionExtensionContext], Awaitable[Any]]


class Actor:
    """A plugin acting on its session through ``ctx`` after a turn (``turn_completed``).

    ``plan(action)`` queues a coroutine function called with the plugin's
    ``ctx`` after the next completed turn; its result (or the exception it
    raised) is appended to ``outcomes``. :func:`act` wraps the round trip.
    """

    def __init__(self) -> None:
        self.planned: list[Action] = []
        self.outcomes: list[Any] = []

    def plan(self, action: Action) -> None:
        self.planned.append(action)

    @hookimpl
    async def turn_completed(self, ctx: SessionExtensionContext) -> None:
        if not self.planned:
            return
        action = self.planned.pop(0)
        try:
            self.outcomes.append(await action(ctx))
        except Exception as exc:
            self.outcomes.append(exc)


async def act(agent: Agent, actor: Actor, session_id: str, action: Action, text: str = "go") -> Any:
    """Run a turn in ``session_id`` after which ``actor`` runs ``action``; its result (or raise its error)."""
    await agent.dispatcher.drain()  # earlier turns' effects must not pick the action up
    actor.plan(action)
    result = await agent.send(text, session_id)
    assert result.turn.status == "completed", result.turn.error
    await agent.dispatcher.drain()
    outcome = actor.outcomes.pop()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true (polling), or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
