"""The agent's TOML configuration, structured into attrs classes.

Structuring goes through the contract's strict converter, so a wrong type,
an unknown key or a value out of its range (:mod:`turnkit.ranges`) is
reported with its path (``$.plugins.required[0]``) and the file it came
from, on one line; so is a file that cannot be read or parsed at all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import attrs
from turnkit_hookspecs import PayloadError, structure

from .errors import ConfigError
from .instructions import usable_instructions
from .ranges import DAY, THREADS, YEAR, EachValue, between, each_nonblank, nonblank, positive, setting_error

T = TypeVar("T")

#: Looked up in the working directory when neither ``--config`` nor ``TURNKIT_CONFIG`` names a file.
DEFAULT_CONFIG_FILE = "turnkit.toml"

#: Nesting deeper than this is a mistake, whatever the table: refused before
#: anything recurses into it (the converter, JSON encoders, deep copies).
MAX_DEPTH = 32

#: The largest file read as a configuration.
MAX_BYTES = 10_000_000

#: Keys of earlier versions, and what replaced them.
_RENAMED = {("plugins", "effect_timeouts"): "[plugins] timeouts (it applies to every kind of point)"}


@attrs.frozen
class PluginsConfig:
    """``[plugins]``: which plugins must load, how points are ordered, timed and run.

    A plugin whose settings need keys (``[plugin.openai] model``) and that
    has no table is installed but not configured: it stays inactive, and
    the agent says so at start, unless it is ``required`` (by name or
    distribution), which makes the missing table a start error.

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

    When the agent stops, each plugin's ``close()`` has ``close_timeout``
    seconds; one that runs out is logged and left behind.

    Time limits are more than 0 and at most a day; thread counts and
    ``hung_limit`` from 1 to 1024; ``watchdog`` from 0.01 to 3600 seconds.
    A ``timeouts`` key that is not a point is refused when the agent starts.
    """

    required: list[str] = attrs.field(factory=list)
    order: dict[str, list[str]] = attrs.field(factory=dict)
    guard_timeout: float = attrs.field(default=5.0, validator=positive(DAY))
    pipeline_timeout: float = attrs.field(default=10.0, validator=positive(DAY))
    resolve_timeout: float = attrs.field(default=10.0, validator=positive(DAY))
    effect_timeout: float = attrs.field(default=5.0, validator=positive(DAY))
    timeouts: dict[str, float] = attrs.field(factory=dict, validator=EachValue(positive(DAY)))
    call_workers: int = attrs.field(default=8, validator=between(1, THREADS))
    inline_after: int = attrs.field(default=20, validator=between(0, 1_000_000))
    watchdog: float = attrs.field(default=0.25, validator=between(0.01, 3600))
    hung_limit: int = attrs.field(default=2, validator=between(1, THREADS))
    effect_workers: int = attrs.field(default=4, validator=between(1, THREADS))
    effect_queue: int = attrs.field(default=10_000, validator=between(1, 10_000_000))
    close_timeout: float = attrs.field(default=10.0, validator=positive(DAY))


@attrs.frozen
class AgentConfig:
    """``[agent]``: who this agent is, and what it is told.

    ``id`` is the address other agents send to (``send_to_agent``) and the
    owner of the sessions it creates; two agents may share one store.

    ``instructions`` is the system prompt every turn's model gets first,
    unless the session has its own (``SessionAccess.set_instructions``);
    the ``turn_instructions`` pipeline has the last word. Or
    ``instructions_file`` names a UTF-8 file holding them (relative to the
    configuration file's folder, read when the agent starts); giving both
    is an error. At most a million characters, no NUL.
    """

    id: str = attrs.field(default="default", validator=nonblank)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    instructions: str = attrs.field(default="", validator=usable_instructions)
    instructions_file: str | None = attrs.field(default=None, validator=attrs.validators.optional(nonblank))

    @instructions_file.validator
    def _one_source(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        """Two sources would leave one silently ignored."""
        if value is not None and self.instructions:
            raise setting_error(attribute.name, "give instructions or instructions_file, not both")


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

    ``group_commit`` is how long (seconds) a SQLite write waits at most for
    writes of other sessions to share its transaction and its fsync; with
    0 (the default) only those already on their way join it, so a lone
    turn is not delayed at all. No write is answered before its commit.

    ``busy_timeout`` and ``lease`` are at most a day, ``heartbeat`` less
    than ``lease``, ``poll`` from 0.01 to 3600 seconds, ``pool_size`` from
    2 to 1024, ``idempotency_keep`` at most a year and ``group_commit``
    from 0 to 1 second.
    """

    url: str = attrs.field(default="turnkit.db", validator=nonblank)
    synchronous: Literal["normal", "full"] = "full"
    busy_timeout: float = attrs.field(default=5.0, validator=positive(DAY))
    thread: bool = False
    lease: float = attrs.field(default=15.0, validator=positive(DAY))
    heartbeat: float = attrs.field(default=3.0, validator=positive(DAY))
    poll: float = attrs.field(default=0.05, validator=between(0.01, 3600))
    pool_size: int = attrs.field(default=8, validator=between(2, THREADS))
    idempotency_keep: float = attrs.field(default=DAY, validator=positive(YEAR))
    group_commit: float = attrs.field(default=0.0, validator=between(0, 1))

    @heartbeat.validator
    def _renewed_in_time(self, attribute: attrs.Attribute[float], value: float) -> None:
        """A lease renewed no sooner than it runs out would be taken over between renewals."""
        if not value < self.lease:
            raise setting_error(attribute.name, f"must be < lease ({self.lease!r}), got {value!r}")


@attrs.frozen
class ScriptStep:
    """One scripted reply of the built-in model: a text, or a tool call (``tool`` and ``args``)."""

    text: str | None = None
    tool: str | None = attrs.field(default=None)
    args: dict[str, Any] = attrs.field(factory=dict)

    @tool.validator
    def _one_answer(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        """A step is one reply: a text and a tool call at once would drop the text unsaid."""
        if value is None:
            return
        if self.text is not None:
            raise setting_error(attribute.name, "give text or tool, not both")
        nonblank(self, attribute, value)


@attrs.frozen
class ModelConfig:
    """``[model]``: the model's name and context window, and the built-in model's script.

    ``name`` is the model that answers, as the model plugin names it (the
    ``model_names`` point): left unset, it is the first name that plugin
    serves (``echo`` for the built-in model); set, the agent refuses to
    start unless the model plugin serves it. Once the agent has started,
    its ``config.model.name`` is always set. ``context_windows`` maps model
    names to their window in tokens; ``context_window`` applies to names
    not listed. ``script`` makes the built-in model answer with these steps
    in order (then echo). Windows are from 1 to 10⁹ tokens.
    """

    name: str | None = attrs.field(default=None, validator=attrs.validators.optional(nonblank))
    context_window: int = attrs.field(default=8192, validator=between(1, 10**9))
    context_windows: dict[str, int] = attrs.field(factory=dict, validator=EachValue(between(1, 10**9)))
    script: list[ScriptStep] = attrs.field(factory=list)

    @property
    def max_tokens(self) -> int:
        """The context window of the configured model."""
        if self.name is None:
            return self.context_window
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
    agents sent it, from 0.01 to 3600.
    """

    history: int = attrs.field(default=50, validator=between(1, 100_000))
    max_tool_steps: int = attrs.field(default=8, validator=between(0, 1000))
    keep_recent: int = attrs.field(default=6, validator=between(0, 100_000))
    interrupted: Literal["rerun", "report"] = "rerun"
    inbox_poll: float = attrs.field(default=0.5, validator=between(0.01, 3600))


@attrs.frozen
class ServicesConfig:
    """``[services]``: which services start, in which order.

    Services start in ``order`` (then the rest by name) and stop in reverse.
    A service named in ``required`` that fails to start stops the agent;
    any other is reported and left out. ``disabled`` ones are not started.
    A required service that is not installed (or disabled) is refused when
    the agent starts.
    """

    order: list[str] = attrs.field(factory=list)
    required: list[str] = attrs.field(factory=list)
    disabled: list[str] = attrs.field(factory=list)

    @disabled.validator
    def _not_required(self, attribute: attrs.Attribute[list[str]], value: list[str]) -> None:
        for index, name in enumerate(value):
            if name in self.required:
                raise setting_error(
                    f"{attribute.name}[{index}]", f"{name!r} is required, it cannot be disabled"
                )


@attrs.frozen
class SecretsConfig:
    """``[secrets]``: values that must never be stored or logged.

    ``env`` names environment variables whose values are secret, on top of
    the ones the runtime already knows (every ``*_env`` setting of any
    table, and the tokens of the built-in channels): each such value is
    replaced by ``[secret]`` in whatever is stored (tool output, errors,
    traces) and in the log.
    """

    env: list[str] = attrs.field(factory=list, validator=each_nonblank)

    @env.validator
    def _variable_names(self, attribute: attrs.Attribute[list[str]], value: list[str]) -> None:
        """``TOKEN=abc`` is a value, not a name: it would protect nothing."""
        for index, name in enumerate(value):
            if "=" in name:
                raise setting_error(
                    f"{attribute.name}[{index}]", "has an '=': give the variable's name, not its value"
                )


def _otlp_url(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise setting_error(
            attribute.name, f"must be an http:// or https:// URL (OTLP over HTTP), got {value!r}"
        )


@attrs.frozen
class TelemetryConfig:
    """``[telemetry]``: standard telemetry, each part off until switched on.

    ``metrics = true`` counts turns and hook calls for Prometheus, served at
    ``/metrics`` on the HTTP channel. ``otlp_endpoint`` exports traces over
    OTLP/HTTP to a collector (Jaeger, Tempo, any OTLP backend): a span per
    turn with a child per hook call and per tool step; a URL without a path
    gets the standard ``/v1/traces``. ``service_name`` is the
    ``service.name`` the spans carry. Both need the ``telemetry`` extra
    (``pip install 'turnkit[telemetry]'``).
    """

    metrics: bool = False
    otlp_endpoint: str = attrs.field(default="", validator=_otlp_url)
    service_name: str = attrs.field(default="turnkit", validator=nonblank)


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
    telemetry: TelemetryConfig = attrs.field(factory=TelemetryConfig)
    plugin: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    service: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    base_dir: str = "."
    #: The file the configuration came from, for error messages.
    source: str = "<config>"


def parse_config(data: Mapping[str, object], source: str = "<config>", base_dir: str = ".") -> Config:
    """Structure already-parsed TOML data; errors name ``source`` and each key path."""
    problems = [*_computed_keys(data), *_renamed_keys(data), *_too_deep(data, "$", MAX_DEPTH)]
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    try:
        return structure({**data, "base_dir": base_dir, "source": source}, Config)
    except PayloadError as exc:
        raise ConfigError(f"{source}: " + "; ".join(exc.problems)) from exc


def _computed_keys(data: Mapping[str, object]) -> list[str]:
    return [
        f"not a configuration key (it is set from the file) @ $.{key}"
        for key in ("base_dir", "source")
        if key in data
    ]


def _renamed_keys(data: Mapping[str, object]) -> list[str]:
    problems = []
    for (table, key), now in _RENAMED.items():
        values = data.get(table)
        if isinstance(values, Mapping) and key in values:
            problems.append(f"renamed {now} @ $.{table}.{key}")
    return problems


def _too_deep(value: object, path: str, room: int) -> list[str]:
    """The first place ``value`` nests more than ``room`` tables and arrays deep."""
    items: list[tuple[str, object]]
    if isinstance(value, Mapping):
        items = [(f"{path}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return []
    if room == 0:
        return [f"nested more than {MAX_DEPTH} tables or arrays deep @ {path}"]
    for where, item in items:
        problems = _too_deep(item, where, room - 1)
        if problems:
            return problems
    return []


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration from ``path``, ``$TURNKIT_CONFIG`` or ``./turnkit.toml``.

    A named file that does not exist is an error; the implicit default file
    may be absent, which gives the defaults. Whatever the file holds, a
    failure is a :class:`ConfigError` naming it.
    """
    env = os.environ if env is None else env
    named = path if path is not None else env.get("TURNKIT_CONFIG") or None
    file = Path(named) if named is not None else Path(DEFAULT_CONFIG_FILE)
    data = _read(file, named is not None)
    if data is None:
        return Config()
    return parse_config(data, str(file), str(file.parent.resolve()))


def _read(file: Path, named: bool) -> dict[str, Any] | None:
    """The TOML data of ``file``; ``None`` when it is the implicit default file and absent."""
    try:
        if not file.exists():
            if named:
                raise ConfigError(f"{file}: no such configuration file")
            return None
        # A FIFO or a device would block or never end; a huge file is not a configuration.
        if not file.is_file():
            raise ConfigError(f"{file}: not a regular file")
        if file.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{file}: larger than {MAX_BYTES // 1_000_000} MB, not a configuration file")
        return tomllib.loads(file.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ConfigError(f"{file}: nested too deeply to read") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{file}: not UTF-8 text (line {line}: {exc.reason})") from exc
    except ValueError as exc:  # TOMLDecodeError, and a NUL in the path
        raise ConfigError(f"{file}: {exc}") from exc


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
