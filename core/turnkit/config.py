"""The agent's TOML configuration, structured into attrs classes.

Structuring goes through the contract's strict converter, so a wrong type or
an unknown key is reported with its path (``$.plugins.required[0]``) and the
file it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
from turnkit_hookspecs import PayloadError, structure

from .errors import ConfigError

T = TypeVar("T")

#: Looked up in the working directory when neither ``--config`` nor ``TURNKIT_CONFIG`` names a file.
DEFAULT_CONFIG_FILE = "turnkit.toml"


@attrs.frozen
class PluginsConfig:
    """``[plugins]``: which plugins must load, how points are ordered, timed and run.

    ``order`` maps a point to plugin names called first, in that order.

    Every implementation call has a time limit: ``guard_timeout``,
    ``pipeline_timeout``, ``resolve_timeout`` and ``effect_timeout`` (seconds)
    by kind, unless the point declares its own (``turn_reply`` does), and
    ``timeouts`` overrides both per point. A guard that runs out denies; a
    pipeline or resolve that runs out fails the turn, naming the plugin; an
    effect that runs out is traced and the next one runs.

    A plugin's ``def`` implementations of guard, pipeline and resolve points
    run on one of ``call_workers`` threads until ``inline_after`` calls in a
    row each took under a millisecond; then they run on the event loop (the
    fast path). One that then blocks the loop for more than ``watchdog``
    seconds is logged with its plugin and point, and goes back to a thread
    for good. A call that times out on a thread leaves that thread to it and
    a fresh one takes its place; a plugin implementation with ``hung_limit``
    calls still hung is failed at once instead of taking another thread.

    ``effect_workers`` effect dispatches run at once (and as many threads run
    sync effect implementations); at most ``effect_queue`` wait, further
    ones are dropped and traced.
    """

    required: list[str] = attrs.field(factory=list)
    order: dict[str, list[str]] = attrs.field(factory=dict)
    guard_timeout: float = 5.0
    pipeline_timeout: float = 10.0
    resolve_timeout: float = 10.0
    effect_timeout: float = 5.0
    timeouts: dict[str, float] = attrs.field(factory=dict)
    call_workers: int = 8
    inline_after: int = 20
    watchdog: float = 0.25
    hung_limit: int = 2
    effect_workers: int = 4
    effect_queue: int = 10_000


@attrs.frozen
class AgentConfig:
    """``[agent]``: who this agent is.

    ``id`` is the address other agents send to (``send_to_agent``) and the
    owner of the sessions it creates; two agents may share one store.
    """

    id: str = "default"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


@attrs.frozen
class StoreConfig:
    """``[store]``: where sessions live.

    ``url`` is a file path (relative to the configuration file's folder),
    ``sqlite:///path``, ``:memory:``, or ``postgresql://user@host/db``
    (several machines, one database). ``synchronous`` is SQLite's
    durability setting in WAL mode: ``full`` (the default: a stored message
    is never lost) makes every commit survive a power cut, at the price of
    an fsync per commit; ``normal`` survives a crash of the process but may
    lose the last commits on a power cut. ``thread`` runs the database
    calls on a thread of their own: slower per call, but a wait for another
    process's lock (up to ``busy_timeout`` seconds) never stalls the agent;
    turn it on when several processes share one file.

    Many processes may run one agent's turns on one store: each holds a
    lease of ``lease`` seconds, renewed every ``heartbeat`` seconds; the
    turns of a process whose lease ran out are taken over by the others
    (sooner when it ran on the same host and is gone). ``poll`` is how
    often (seconds) a SQLite store looks for other processes' commits (a
    PostgreSQL store is told, through ``LISTEN``); ``pool_size`` bounds a
    PostgreSQL store's connections. ``idempotency_keep`` is how long
    (seconds) an ``Idempotency-Key`` keeps naming its turn.
    """

    url: str = "turnkit.db"
    synchronous: Literal["normal", "full"] = "full"
    busy_timeout: float = 5.0
    thread: bool = False
    lease: float = 15.0
    heartbeat: float = 3.0
    poll: float = 0.05
    pool_size: int = 8
    idempotency_keep: float = 86_400.0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.heartbeat < self.lease:
            raise ValueError(
                f"[store] heartbeat must be more than 0 and less than lease ({self.lease}),"
                f" got {self.heartbeat}"
            )
        for name in ("poll", "busy_timeout", "idempotency_keep"):
            if not getattr(self, name) > 0:
                raise ValueError(f"[store] {name} must be more than 0, got {getattr(self, name)}")
        if self.pool_size < 2:
            raise ValueError(f"[store] pool_size must be at least 2, got {self.pool_size}")


@attrs.frozen
class ScriptStep:
    """One scripted reply of the built-in model: a text, or a tool call (``tool`` and ``args``)."""

    text: str | None = None
    tool: str | None = None
    args: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ModelConfig:
    """``[model]``: the model's name and context window, and the built-in model's script.

    ``context_windows`` maps model names to their window in tokens;
    ``context_window`` applies to names not listed. ``script`` makes the
    built-in model answer with these steps in order (then echo).
    """

    name: str = "echo"
    context_window: int = 8192
    context_windows: dict[str, int] = attrs.field(factory=dict)
    script: list[ScriptStep] = attrs.field(factory=list)

    @property
    def max_tokens(self) -> int:
        """The context window of the configured model."""
        return self.context_windows.get(self.name, self.context_window)


@attrs.frozen
class TurnsConfig:
    """``[turns]``: how the orchestrator runs turns.

    ``history`` messages (plus the latest summary) make a prompt's window;
    ``max_tool_steps`` bounds the tool-call loop of one turn;
    ``keep_recent`` messages stay uncompressed when a session is compressed;
    ``interrupted`` says what a restart does with a turn a crash
    interrupted: ``rerun`` its inbound message once, or ``report`` it (the
    message stays stored, the turn stays ``interrupted``);
    ``inbox_poll`` is how often (seconds) the agent looks for messages other
    agents sent it.
    """

    history: int = 50
    max_tool_steps: int = 8
    keep_recent: int = 6
    interrupted: Literal["rerun", "report"] = "rerun"
    inbox_poll: float = 0.5


@attrs.frozen
class ServicesConfig:
    """``[services]``: which services start, in which order.

    Services start in ``order`` (then the rest by name) and stop in reverse.
    A service named in ``required`` that fails to start stops the agent;
    any other is reported and left out. ``disabled`` ones are not started.
    """

    order: list[str] = attrs.field(factory=list)
    required: list[str] = attrs.field(factory=list)
    disabled: list[str] = attrs.field(factory=list)


@attrs.frozen
class SecretsConfig:
    """``[secrets]``: values that must never be stored or logged.

    ``env`` names environment variables whose values are secret, on top of
    the ones the runtime already knows (every ``*_env`` setting of any
    table, and the tokens of the built-in channels): each such value is
    replaced by ``[secret]`` in whatever is stored (tool output, errors,
    traces) and in the log.
    """

    env: list[str] = attrs.field(factory=list)


@attrs.frozen
class Config:
    """The whole configuration file.

    ``plugin`` holds each plugin's own table (``[plugin.auth]``) and
    ``service`` each service's (``[service.chat]``); each is structured into
    that plugin's or service's ``settings_class`` when the agent starts;
    ``base_dir`` is the folder relative paths are resolved against (the
    configuration file's).
    """

    agent: AgentConfig = attrs.field(factory=AgentConfig)
    store: StoreConfig = attrs.field(factory=StoreConfig)
    model: ModelConfig = attrs.field(factory=ModelConfig)
    turns: TurnsConfig = attrs.field(factory=TurnsConfig)
    services: ServicesConfig = attrs.field(factory=ServicesConfig)
    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    secrets: SecretsConfig = attrs.field(factory=SecretsConfig)
    plugin: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    service: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    base_dir: str = "."
    #: The file the configuration came from, for error messages.
    source: str = "<config>"


def parse_config(data: Mapping[str, object], source: str = "<config>", base_dir: str = ".") -> Config:
    """Structure already-parsed TOML data; errors name ``source`` and each key path."""
    for computed in ("base_dir", "source"):
        if computed in data:
            raise ConfigError(f"{source}: $.{computed}: not a configuration key (it is set from the file)")
    try:
        return structure({**data, "base_dir": base_dir, "source": source}, Config)
    except PayloadError as exc:
        raise ConfigError(f"{source}: " + "; ".join(exc.problems)) from exc


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration from ``path``, ``$TURNKIT_CONFIG`` or ``./turnkit.toml``.

    A named file that does not exist is an error; the implicit default file
    may be absent, which gives the defaults.
    """
    env = os.environ if env is None else env
    named = path if path is not None else env.get("TURNKIT_CONFIG") or None
    file = Path(named) if named is not None else Path(DEFAULT_CONFIG_FILE)
    if not file.exists():
        if named is not None:
            raise ConfigError(f"{file}: no such configuration file")
        return Config()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return parse_config(data, str(file), str(file.parent.resolve()))


def settings_for(
    config: Config, section: Literal["service", "plugin"], name: str, settings_class: type[T]
) -> T:
    """Structure ``[SECTION.NAME]`` into ``settings_class``; errors name the file and key path."""
    tables = config.service if section == "service" else config.plugin
    try:
        return structure(tables.get(name, {}), settings_class)
    except PayloadError as exc:
        problems = "; ".join(_under(f"$.{section}.{name}", problem) for problem in exc.problems)
        raise ConfigError(f"{config.source}: {problems}") from exc


def _under(prefix: str, problem: str) -> str:
    """A converter problem (``… @ $.http.port``) with its path moved under ``prefix``."""
    text, marker, path = problem.rpartition(" @ $")
    return f"{text} @ {prefix}{path}" if marker else f"{problem} @ {prefix}"


def with_service_option(config: Config, service: str, key: str, value: Any) -> Config:
    """``config`` with ``[service.SERVICE] KEY = value`` (the command line's overrides)."""
    tables = {**config.service, service: {**config.service.get(service, {}), key: value}}
    return attrs.evolve(config, service=tables)
