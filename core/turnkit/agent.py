"""The agent: the host object owning config, env, logger, store, plugins and services.

``async with Agent(config) as agent`` loads the configuration, discovers and
registers services and plugins (refusing to start without a required one),
opens the session store, starts the services in order (an optional one that
fails is reported and left out), and recovers what a crash interrupted.
Leaving the block stops everything in reverse. Scripts without an event
loop use :class:`turnkit.sync.SyncAgent`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from turnkit_hookspecs import (
    ActionResult,
    ChunkListener,
    Initiator,
    Message,
    Origin,
    Service,
    SessionInfo,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    TurnInfo,
    TurnResult,
    WebApp,
)

from .actions import ActionRegistry
from .config import Config, load_config, settings_for
from .defaults import install_defaults, other_models
from .dispatch import Dispatcher
from .errors import ConfigError, PluginConfigureError, StoreError, TurnkitError
from .extension import ExtensionContext
from .instructions import agent_instructions
from .manager import PluginManager, required_keys, table_hint
from .models import ModelChoice, choose_model
from .orchestrator import SessionOrchestrator
from .points import Points
from .secrets import Secrets, protect_logs
from .storage import ServiceStorage
from .store import Store, open_store
from .telemetry import Telemetry
from .tracing import TraceSinks, TurnTraceSink
from .watchdog import Watchdog

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

T = TypeVar("T")
ConfigSource = Config | str | os.PathLike[str] | None


class Agent:
    """Hosts sessions; see the module docstring for its lifecycle."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        env: Mapping[str, str] | None = None,
        manager: PluginManager | None = None,
        logger: logging.Logger | None = None,
        resume: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """``config`` is a :class:`Config`, a TOML file path, or ``None`` (``$TURNKIT_CONFIG``
        or ``./turnkit.toml``). ``manager`` replaces discovery (tests, embedding).
        ``tracer_provider`` is an application's OpenTelemetry provider, which then gets the
        spans of the turns (see :mod:`turnkit.telemetry`).

        With ``resume`` (the default) the agent runs turns from the start:
        it takes over what processes whose lease ran out left running,
        resumes queued turns and reads its inbox, then keeps doing so. With
        ``resume=False`` (one-off commands: ``turnkit send``, service
        actions) it does none of that until it is asked to run a turn; it
        then takes a lease and recovers once, and afterwards only keeps its
        lease and hears about the turns it waits for."""
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.config = config if isinstance(config, Config) else load_config(config, self.env)
        self.id = self.config.agent.id
        self.logger = logger or logging.getLogger(f"turnkit.agent.{self.id}")
        self.logger.setLevel(self.config.agent.log_level)
        #: Values scrubbed from what is stored and logged; settings add theirs as they are structured.
        self.secrets = Secrets.of(self.config, self.env)
        protect_logs(self.secrets)
        self._given_manager = manager
        self._resume = resume
        #: Plugins configured, in order: closed in reverse when the agent stops.
        self._configured: list[tuple[str, object]] = []
        self._model: ModelChoice | None = None
        self.traces = TurnTraceSink()
        #: Spans and metrics, as ``[telemetry]`` (or ``tracer_provider``) switches them on.
        self.telemetry = Telemetry.of(self.config, tracer_provider)
        self.actions = ActionRegistry(self.secrets)
        self.context = AgentContext(self)
        #: Services that started, in start order.
        self.services: dict[str, Any] = {}
        #: Services that failed to start: name → error.
        self.service_errors: dict[str, str] = {}
        self._manager: PluginManager | None = None
        self._dispatcher: Dispatcher | None = None
        self._watchdog: Watchdog | None = None
        self._store: Store | None = None
        self._orchestrator: SessionOrchestrator | None = None
        self._stop_serving = asyncio.Event()

    # ------------------------------------------------------------------ parts

    @property
    def manager(self) -> PluginManager:
        """The plugin manager (available once started)."""
        return self._started(self._manager)

    @property
    def dispatcher(self) -> Dispatcher:
        """Dispatch of the points (available once started): ``await agent.dispatcher.drain()``."""
        return self._started(self._dispatcher)

    @property
    def store(self) -> Store:
        """The session store (available once started)."""
        return self._started(self._store)

    @property
    def model(self) -> ModelChoice:
        """The model answering this agent's turns, as checked at start (see :mod:`turnkit.models`)."""
        return self._started(self._model)

    @property
    def orchestrator(self) -> SessionOrchestrator:
        """The orchestrator running this agent's turns (available once started)."""
        return self._started(self._orchestrator)

    @property
    def sessions(self) -> SessionsView:
        """Open sessions, run turns, read history (what services get as ``context.session``)."""
        return self.context.session

    def _started(self, part: T | None) -> T:
        if part is None:
            raise TurnkitError(
                "the agent is not started: use 'async with Agent(...)' or 'await agent.start()'"
            )
        return part

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load plugins, open the store, start services, recover and resume turns.

        If any of it fails, what already started is stopped again, the store
        is closed and the agent is left unstarted.
        """
        manager = self._given_manager
        if manager is None:
            manager = PluginManager.load(self.config, self.env, strict=True)
        install_defaults(manager, self.config.model)
        self._check_names(manager)
        instructions = agent_instructions(self.config)  # read at start: a missing file stops it here
        self._manager = manager
        sinks = self.telemetry.sinks
        self._dispatcher = Dispatcher(manager, TraceSinks([self.traces, *sinks]) if sinks else self.traces)
        try:
            self._store = await open_store(self.config.store, self.config.base_dir, secrets=self.secrets)
        except StoreError as exc:
            raise StoreError(f"{self.config.source}: {exc} @ $.store.url") from exc
        self._watchdog = Watchdog(manager.config.watchdog, self._dispatcher.owners)
        self._watchdog.start()
        try:
            await self._configure_plugins(manager)
            await self._choose_model(manager)
            # Made once the model is settled (its name is in the config it reads), before the
            # services start so that they can open sessions from start(); it starts running
            # turns (recovery, queued turns, the inbox) once they all have.
            self._orchestrator = SessionOrchestrator(
                self.id,
                self._store,
                Points(self._dispatcher),
                self.config,
                self.actions,
                self.traces,
                self.logger,
                self.secrets,
                instructions=instructions,
                telemetry=self.telemetry,
            )
            await self._start_services(manager)
            await self._orchestrator.start(resume=self._resume)
        except BaseException:
            # Undo what started, and leave the agent as unstarted: no closed store behind `agent.store`.
            if self._orchestrator is not None:
                await self._orchestrator.stop()
            await self._stop_services()
            await self._close_plugins()
            await self._store.close()
            self._stop_watching()
            self._store = self._orchestrator = None
            raise

    async def stop(self) -> None:
        """Stop in reverse: turns, effects, services, plugins (``close()``), store. Safe to call twice."""
        if self._store is None:
            return
        try:
            if self._orchestrator is not None:
                await self._orchestrator.stop()
            await self.dispatcher.aclose()
            if self._orchestrator is not None:
                await self._orchestrator.flush_traces()
            await self._stop_services()
            await self._close_plugins()
        finally:
            await self._store.close()
            await self.telemetry.close()
            self._stop_watching()
            self._store = self._orchestrator = None

    def _stop_watching(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _start_order(self, manager: PluginManager) -> list[tuple[str, Any]]:
        available = manager.services()
        wanted = self.config.services
        named = [n for n in wanted.order if n in available]
        rest = sorted(n for n in available if n not in named)
        return [(n, available[n]) for n in named + rest if n not in wanted.disabled]

    async def _configure_plugins(self, manager: PluginManager) -> None:
        """Give each plugin its ``[plugin.NAME]`` settings, then call its ``configure(context)``.

        A plugin that needs a table the file lacks is set aside as not
        configured, with a warning naming the table, so that a plugin
        installed for another agent does not stop this one. Unless it is
        required: then the missing table is an error, as is a table for a
        plugin that declares no ``settings_class``, or a plugin that fails
        to configure: the agent refuses to start rather than run a guard
        that could not read its rules. The plugins configured are kept in
        order, to be closed in reverse.
        """
        source = self.config.source
        manager.set_aside_unconfigured(self.config)
        for record in manager.records.values():
            if record.status == "not configured":
                where = f" ({record.distribution} {record.version})" if record.distribution else ""
                self.logger.warning(
                    "%s: plugin %r%s is installed but not configured, so it stays inactive: %s",
                    source,
                    record.name,
                    where,
                    record.error,
                )
        plugins = manager.plugins()
        for name in sorted(set(self.config.plugin) - set(plugins)):
            self.logger.warning("%s: [plugin.%s] configures a plugin that is not loaded", source, name)
        for name, plugin in plugins.items():
            settings_class = getattr(plugin, "settings_class", None)
            keys = required_keys(settings_class)
            if keys and name not in self.config.plugin:  # a required one: the others were set aside
                raise ConfigError(
                    f"{source}: the required plugin {name!r} is not configured:"
                    f" add {table_hint(name, keys)} @ $.plugin.{name}"
                )
            if settings_class is not None:
                plugin.settings = settings_for(self.config, "plugin", name, settings_class)
                self.secrets.add_settings(plugin.settings, self.env)
            elif name in self.config.plugin:
                raise ConfigError(f"{source}: [plugin.{name}]: the plugin {name!r} takes no settings")
            configure = getattr(plugin, "configure", None)
            if callable(configure):
                try:
                    outcome = configure(self.context)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as exc:
                    raise PluginConfigureError(name, manager.records[name].distribution, exc) from exc
            self._configured.append((name, plugin))

    async def _choose_model(self, manager: PluginManager) -> None:
        """Check ``[model] name`` against what the model plugin serves, and settle it when unset."""
        self._model = await choose_model(self.config, Points(self.dispatcher), echo=not other_models(manager))
        if self.config.model.name != self._model.name:
            model = attrs.evolve(self.config.model, name=self._model.name)
            self.config = attrs.evolve(self.config, model=model)

    async def _close_plugins(self) -> None:
        """Call each configured plugin's ``close()``, last configured first; never raises.

        Each has ``[plugins] close_timeout`` seconds: a plugin that fails or
        runs out is logged, and the others are closed all the same.
        """
        limit = self.manager.config.close_timeout
        while self._configured:
            name, plugin = self._configured.pop()
            close = getattr(plugin, "close", None)
            if not callable(close):
                continue
            try:
                async with asyncio.timeout(limit):
                    outcome = close()
                    if inspect.isawaitable(outcome):
                        await outcome
            except TimeoutError:
                self.logger.error("plugin %s did not close within %g s; stopping without it", name, limit)
            except Exception as exc:
                self.logger.error("plugin %s failed to close: %s: %s", name, type(exc).__name__, exc)

    def _check_names(self, manager: PluginManager) -> None:
        """Refuse ``[plugins] timeouts`` and ``[services] required`` entries naming nothing here."""
        problems = manager.timeout_problems()
        installed = manager.services()
        known = ", ".join(sorted(installed)) or "none"
        problems += [
            f"service {name!r} is not installed (installed services: {known}) @ $.services.required[{index}]"
            for index, name in enumerate(self.config.services.required)
            if name not in installed
        ]
        if problems:
            raise ConfigError(f"{self.config.source}: " + "; ".join(problems))

    async def _start_services(self, manager: PluginManager) -> None:
        unknown = sorted(set(self.config.service) - set(manager.services()))
        if unknown:
            installed = ", ".join(sorted(manager.services())) or "none"
            raise ConfigError(
                f"{self.config.source}: [service.{unknown[0]}] configures a service that is not"
                f" installed (installed services: {installed})"
            )
        for name, service in self._start_order(manager):
            settings_class = getattr(service, "settings_class", None)
            if settings_class is not None:
                service.settings = settings_for(self.config, "service", name, settings_class)
                self.secrets.add_settings(service.settings, self.env)
            try:
                await service.start(self.context)
            except Exception as exc:
                if name in self.config.services.required:
                    raise TurnkitError(
                        f"required service {name!r} failed to start: {str(exc) or type(exc).__name__}"
                    ) from exc
                self.service_errors[name] = f"{type(exc).__name__}: {exc}"
                self.logger.error("service %s failed to start and is left out: %r", name, exc)
                continue
            self.services[name] = service
            self.actions.add_service(service)

    async def _stop_services(self) -> None:
        for name, service in reversed(list(self.services.items())):
            self.actions.remove_service(name)
            try:
                await service.stop()
            except Exception:
                self.logger.exception("service %s failed to stop", name)
        self.services.clear()

    # ------------------------------------------------------------------ serving

    async def serve(self) -> None:
        """Run the services' long-running parts (:meth:`Service.serve`) until told to stop.

        Serving ends when :meth:`request_stop` is called (the command line
        does on SIGINT and SIGTERM), when the task running this is cancelled,
        or when one service's ``serve`` returns (the terminal channel does
        when its user quits); the others are then cancelled. A service whose
        ``serve`` raises ends serving too, and the error is raised here.
        Turns, the inbox and effects keep running while serving, as they do
        whenever the agent is started. The agent stays started afterwards.
        """
        await self.orchestrator.activate(sweep=True)
        self._stop_serving.clear()
        loop = asyncio.get_running_loop()
        serving = {
            loop.create_task(service.serve(self.context), name=f"turnkit serve {name}"): name
            for name, service in self.services.items()
            if _serves(service)
        }
        stop = loop.create_task(self._stop_serving.wait())
        try:
            done, _ = await asyncio.wait([*serving, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*serving, stop]:
                task.cancel()
            await asyncio.gather(*serving, stop, return_exceptions=True)
        for task in done:
            if task in serving and not task.cancelled() and task.exception() is not None:
                error = task.exception()
                why = str(error) or type(error).__name__
                raise TurnkitError(f"service {serving[task]!r} stopped serving: {why}") from error

    def request_stop(self) -> None:
        """Make :meth:`serve` return (safe to call from a signal handler on the loop)."""
        self._stop_serving.set()

    @property
    def stopping(self) -> asyncio.Event:
        """Set once :meth:`request_stop` was called: what long-lived responses (the console's
        live stream) wait on, so that they end before the HTTP server's shutdown waits for them."""
        return self._stop_serving

    # ------------------------------------------------------------------ conveniences

    async def send(
        self,
        message: str | Message,
        session_id: str | None = None,
        *,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
        idempotency_key: str | None = None,
    ) -> TurnResult:
        """Run one turn in ``session_id`` (created if absent, new if ``None``) and return its result."""
        if isinstance(message, str):
            message = Message.of("user", message)
        session = await self.sessions.open(session_id)
        return await self.sessions.turn(
            session.session_id,
            message,
            initiator=initiator,
            initiator_id=initiator_id,
            stream=stream,
            idempotency_key=idempotency_key,
        )

    async def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Call ``service.action`` (see :meth:`AgentContext.invoke`)."""
        return await self.context.invoke(action, payload)


class SessionsView:
    """``context.session``: how services and applications reach sessions."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def open(
        self, session_id: str | None = None, *, kind: str = "chat", metadata: Mapping[str, Any] | None = None
    ) -> SessionInfo:
        """Return session ``session_id``, creating it (of ``kind``) if absent or if no id is given."""
        return await self._agent.orchestrator.open_session(session_id, kind, dict(metadata or {}))

    async def get(self, session_id: str) -> SessionInfo | None:
        """The session, or ``None`` when there is no such session."""
        record = await self._agent.store.get_session(session_id)
        return record.info if record else None

    async def list_sessions(self, kind: str | None = None) -> Sequence[SessionInfo]:
        """This agent's sessions, most recently active first."""
        return [r.info for r in await self._agent.store.list_sessions(self._agent.id, kind)]

    async def turn(
        self,
        session_id: str,
        message: Message,
        *,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
        idempotency_key: str | None = None,
        origin: Origin | None = None,
    ) -> TurnResult:
        """Run one turn with ``message`` (queued behind earlier ones) and return how it ended.

        ``stream`` is awaited with each chunk of the reply's text as it is
        produced (when this process runs the turn). A second call with the
        same ``idempotency_key`` stores nothing and returns the first one's
        turn. ``origin`` (where a channel received the message) is stored
        with the turn and handed on as ``TurnInfo.origin``.
        """
        return await self._agent.orchestrator.submit(
            session_id, message, initiator, initiator_id, stream, idempotency_key, origin
        )

    async def queued(self, session_id: str) -> Sequence[tuple[TurnInfo, Message]]:
        """The session's turns waiting to run, in order, with their messages."""
        return [(turn.info, message) for turn, message in await self._agent.orchestrator.queued(session_id)]

    async def history(self, session_id: str) -> Sequence[Message]:
        """Every message of the session in order, compressed ones included (flagged in metadata)."""
        return [m.with_flags() for m in await self._agent.store.messages(session_id)]

    async def set_instructions(self, session_id: str, instructions: str | None) -> None:
        """Give the session its own instructions (``""``: none; ``None``: the agent's again)."""
        await self._agent.orchestrator.sessions.set_instructions(session_id, instructions)

    async def instructions(self, session_id: str) -> str | None:
        """The session's own instructions, or ``None`` when it uses the agent's."""
        return await self._agent.orchestrator.sessions.instructions(session_id)

    async def extension(self, session_id: str, extension_id: str) -> ExtensionContext:
        """Act on a session as ``extension_id`` (fork, merge …), audited under that id."""
        return await self._agent.orchestrator.extension(session_id, extension_id)


class AgentContext:
    """The ExecutionContext handed to services: a view of the agent, never a second host."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._sessions = SessionsView(agent)
        self._web_apps: dict[str, WebApp] | None = None

    @property
    def agent_id(self) -> str:
        """The id of the agent (``[agent] id``)."""
        return self._agent.id

    @property
    def config(self) -> Config:
        """The agent's structured configuration."""
        return self._agent.config

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the agent was started with."""
        return self._agent.env

    @property
    def logger(self) -> logging.Logger:
        """The agent's logger."""
        return self._agent.logger

    @property
    def session(self) -> SessionsView:
        """How services reach sessions."""
        return self._sessions

    @property
    def plugins(self) -> Dispatcher:
        """Dispatch of the four kinds (``await context.plugins.guard("point", ...)``)."""
        return self._agent.dispatcher

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The services' actions offered to the model as tools."""
        return self._agent.actions.tools

    async def run_tool(self, call: ToolCallBlock) -> ToolOutputBlock:
        """Run a service tool as a model's call runs, secrets scrubbed (see ``ExecutionContext.run_tool``)."""
        return await self._agent.actions.run_tool(call)

    async def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Call ``service.action`` with ``payload`` as keyword arguments.

        An unknown service or action raises
        :class:`~turnkit.errors.UnknownActionError`; an exception inside the
        action comes back as ``ActionResult(ok=False, error=...)``.
        """
        return await self._agent.actions.invoke(action, payload)

    def storage(self, namespace: str) -> ServiceStorage:
        """Durable records of ``namespace`` (a service's name) in the agent's store."""
        return ServiceStorage(self._agent.store, namespace)

    @property
    def web_apps(self) -> Mapping[str, WebApp]:
        """The console at ``/console``, and ``/metrics`` when ``[telemetry] metrics`` is on.

        Built when first asked: only a serving HTTP channel asks.
        """
        if self._web_apps is None:
            from .console.hosts import PATH, served_console

            agent = self._agent
            self._web_apps = {PATH: served_console(agent)}
            metrics = agent.telemetry.metrics
            if metrics is not None:
                from .metrics import MetricsEndpoint

                endpoint = MetricsEndpoint(metrics, lambda: (agent.store, agent.dispatcher))
                self._web_apps["/metrics"] = WebApp(endpoint)
        return self._web_apps


def _serves(service: Any) -> bool:
    """Whether ``service`` has a long-running part (its ``serve`` is not the base class's no-op)."""
    serve = getattr(type(service), "serve", None)
    return serve is not None and serve is not Service.serve
