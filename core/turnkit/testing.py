"""turnkit's pytest plugin: a real agent for one test, to try a plugin against.

It is registered through the ``pytest11`` entry point of the ``turnkit``
distribution, so its fixtures exist in every test session of an environment
where turnkit is installed — a plugin's own test suite needs no conftest::

    from turnkit.testing import tool_call

    def test_denies_strangers(turnkit_agent):
        turnkit_agent.register(AuthPlugin(), "auth", settings={"allow": ["alice"]})
        result = turnkit_agent.send("hi", initiator_id="mallory")
        assert result.turn.status == "denied" and result.deny.plugin == "auth"

The agent is real: a SQLite file in the test's ``tmp_path``, the runtime's
orchestrator, dispatcher and audit trail, and the built-in model answering
with a script (:meth:`AgentHarness.script`), then echoing. It starts on first
use, so everything that shapes it (plugins, services, settings, the script)
is said first; it stops when the test ends. It runs on its own event loop in
a background thread (:class:`~turnkit.sync.SyncAgent`), so tests are plain
functions and effects keep running between calls; :meth:`AgentHarness.run`
takes any coroutine to that loop.

A channel is tested from the outside instead: ``turnkit_served``
(:class:`~turnkit.testing_served.ServedAgent`) runs ``turnkit serve`` in a
subprocess, so that a test posts platform requests to the agent's HTTP
server, kills it between accepting a message and answering it, and starts it
again on the same store; ``turnkit_endpoint``
(:class:`~turnkit.testing_endpoint.RecordingEndpoint`) plays the platform's
send endpoint on loopback.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import importlib_metadata

try:
    import pytest
except ImportError:  # the runtime does not depend on pytest: the fixture kit is its test extra
    raise ImportError("turnkit.testing needs pytest: pip install 'turnkit[test]'") from None
from turnkit_hookspecs import (
    ActionResult,
    Initiator,
    Message,
    Prompt,
    Service,
    SessionInfo,
    TurnResult,
    hookimpl,
)

from .agent import Agent
from .config import parse_config
from .discovery import BUILTIN_GROUP, PLUGINS_GROUP, SERVICES_GROUP, find
from .manager import PluginManager
from .store.records import AuditEvent
from .sync import SyncAgent
from .testing_endpoint import RecordingEndpoint
from .testing_served import ServedAgent
from .tracing import TraceRecord

T = TypeVar("T")

#: What configuration errors name as the file: the settings come from the test, not from a file.
CONFIG_SOURCE = "<turnkit_agent settings>"

#: The name the harness's prompt recorder is registered under (``turnkit hooks`` shows it).
RECORDER_NAME = "turnkit-testing-prompts"


def entry_point_plugin(project: str | os.PathLike[str], name: str) -> object:
    """The plugin ``name`` as the runtime makes it from a distribution's ``turnkit.plugins`` entry point.

    ``project`` is the distribution's ``pyproject.toml`` (or its folder), so
    a plugin's own tests load it exactly as an agent would — the entry
    point's object, instantiated if it is a class — before it is installed.
    """
    path = Path(project)
    path = path / "pyproject.toml" if path.is_dir() else path
    declared = tomllib.loads(path.read_text(encoding="utf-8"))["project"].get("entry-points", {})
    try:
        value = declared[PLUGINS_GROUP][name]
    except KeyError:
        raise LookupError(f"{path} declares no {PLUGINS_GROUP!r} entry point named {name!r}") from None
    loaded = importlib_metadata.EntryPoint(name, value, PLUGINS_GROUP).load()
    return loaded() if isinstance(loaded, type) else loaded


def tool_call(name: str, **args: Any) -> dict[str, Any]:
    """A script step in which the model calls the tool ``name`` with ``args``."""
    return {"tool": name, "args": args}


class PromptRecorder:
    """Keeps each turn's prompt as the ``turn_prompt`` pipelines left it; changes nothing."""

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    @hookimpl(trylast=True)
    def turn_prompt(self, prompt: Prompt) -> None:
        """Record ``prompt``: registered before the plugins under test, so called after them."""
        self.prompts.append(prompt)


class AgentHarness:
    """An agent for one test; see the module docstring. Made by the ``turnkit_agent`` fixture."""

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        """``directory`` holds the store (``agent.db``); ``env`` is the agent's environment."""
        self.directory = directory
        self.env = dict(env) if env is not None else None
        self._tables: dict[str, Any] = {"store": {"url": str(directory / "agent.db")}}
        self._plugins: dict[str, object] = {}
        self._services: list[Service] = []
        self._recorder = PromptRecorder()
        self._sync: SyncAgent | None = None

    # ------------------------------------------------------------------ shaping (before start)

    def register(
        self, plugin: object, name: str | None = None, *, settings: Mapping[str, Any] | None = None
    ) -> str:
        """Register ``plugin`` (a module or an object) for this test; ``settings`` become ``[plugin.NAME]``.

        Returns the name it is registered under: ``name``, else the module's
        ``__name__`` or the object's class name.
        """
        self._before_start("register a plugin")
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._plugins[name] = plugin
        if settings is not None:
            self._tables.setdefault("plugin", {})[name] = dict(settings)
        return name

    def add_service(self, service: Service | str, *, settings: Mapping[str, Any] | None = None) -> None:
        """Run a service in the agent: an object, or the name of an installed one (``"chat"``).

        ``settings`` become ``[service.NAME]``.
        """
        self._before_start("add a service")
        if isinstance(service, str):
            service = _installed_service(service)
        self._services.append(service)
        if settings is not None:
            self._tables.setdefault("service", {})[service.name] = dict(settings)

    def configure(self, **tables: Mapping[str, Any]) -> None:
        """Set top-level tables of the agent's configuration (``turns={"history": 4}``).

        Keys are merged into what is already set; ``plugins`` and ``services``
        are the ``[plugins]`` and ``[services]`` tables.
        """
        self._before_start("configure")
        for table, values in tables.items():
            self._tables.setdefault(table, {}).update(values)

    def script(self, *steps: str | Mapping[str, Any]) -> None:
        """What the built-in model answers, in order: a text, or a :func:`tool_call`; then it echoes."""
        self._before_start("script the model")
        self._tables.setdefault("model", {}).setdefault("script", []).extend(
            {"text": step} if isinstance(step, str) else dict(step) for step in steps
        )

    def build(self) -> Agent:
        """A new, unstarted :class:`Agent` shaped as said so far, for ``async with`` in async tests."""
        config = parse_config(self._tables, source=CONFIG_SOURCE, base_dir=str(self.directory))
        manager = PluginManager(config.plugins)
        for service in self._services:  # first, as discovery does: they declare points plugins implement
            manager.add_service(service)
        # a built-in: called after every plugin and service in its (trylast) group
        manager.register(self._recorder, RECORDER_NAME, group=BUILTIN_GROUP)
        for name, plugin in self._plugins.items():
            manager.register(plugin, name)
        return Agent(config, manager=manager, env=self.env)

    # ------------------------------------------------------------------ running

    def start(self) -> Agent:
        """Start the agent now (the first call that needs it does so anyway) and return it."""
        if self._sync is None:
            sync = SyncAgent(agent=self.build())
            sync.start()
            self._sync = sync
        return self._sync.agent

    @property
    def agent(self) -> Agent:
        """The running agent (started if it was not)."""
        return self.start()

    def stop(self) -> None:
        """Stop the agent (the fixture does this when the test ends)."""
        if self._sync is not None:
            sync, self._sync = self._sync, None
            sync.stop()

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine on the agent's event loop and return its result."""
        self.start()
        assert self._sync is not None
        return self._sync.call(awaitable)

    def send(
        self,
        message: str | Message,
        session_id: str | None = None,
        *,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
    ) -> TurnResult:
        """Run one turn (in a new session unless ``session_id`` is given) and return its result."""
        return self.run(self.agent.send(message, session_id, initiator=initiator, initiator_id=initiator_id))

    def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Call a service's action (``"memory.store"``) as a plugin's ``context.invoke`` would."""
        return self.run(self.agent.invoke(action, payload))

    def session(self, session_id: str) -> SessionInfo | None:
        """What the store says of a session."""
        return self.run(self.agent.sessions.get(session_id))

    def history(self, session_id: str) -> list[Message]:
        """Every message of a session, in order."""
        return list(self.run(self.agent.sessions.history(session_id)))

    def settle(self) -> None:
        """Wait for every effect queued so far, and store the traces of those that finished."""
        self.run(self._settle())

    async def _settle(self) -> None:
        await self.agent.dispatcher.drain()
        await self.agent.orchestrator.flush_traces()

    # ------------------------------------------------------------------ inspecting

    @property
    def prompts(self) -> list[Prompt]:
        """Each turn's prompt as the model is first asked it (after every ``turn_prompt`` pipeline)."""
        return self._recorder.prompts

    def trace(self, turn_id: str) -> list[TraceRecord]:
        """Every hook call of a turn, in call order, its effects included (waits for them)."""
        self.settle()
        calls = self.run(self.agent.store.trace(turn_id))
        return [call for call in calls if call.plugin != RECORDER_NAME]

    def audit(self, session_id: str) -> list[AuditEvent]:
        """The session's audit trail: forks, merges, compressions … and who did them."""
        self.settle()
        return self.run(self.agent.store.audit_events(session_id))

    def _before_start(self, what: str) -> None:
        if self._sync is not None:
            raise RuntimeError(f"cannot {what}: the agent has started (shape it before the first send)")


def _installed_service(name: str) -> Service:
    """A fresh instance of the installed service registered as ``name``."""
    for candidate in find(SERVICES_GROUP):
        if candidate.name == name:
            loaded = candidate.load()
            service = loaded() if isinstance(loaded, type) else loaded
            if not isinstance(service, Service):
                raise TypeError(f"{candidate.value} (service {name!r}) is not a turnkit Service")
            return service
    installed = ", ".join(c.name for c in find(SERVICES_GROUP)) or "none"
    raise LookupError(f"no installed service is named {name!r} (installed: {installed})")


@pytest.fixture
def turnkit_served(tmp_path: Path) -> Iterator[ServedAgent]:
    """``turnkit serve`` run in ``tmp_path``, for channel tests (:class:`ServedAgent`)."""
    served = ServedAgent(tmp_path)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def turnkit_endpoint() -> Iterator[RecordingEndpoint]:
    """A loopback server recording what a channel sends its platform (:class:`RecordingEndpoint`)."""
    endpoint = RecordingEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.fixture
def turnkit_agent(tmp_path: Path) -> Iterator[AgentHarness]:
    """A real agent on a SQLite file in ``tmp_path``, with the scripted model (:class:`AgentHarness`)."""
    harness = AgentHarness(tmp_path)
    try:
        yield harness
    finally:
        harness.stop()
