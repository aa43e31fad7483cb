"""The plugin manager: registration, validation and the record of what loaded.

It wraps a pluggy ``PluginManager`` for project ``turnkit`` and adds what the
runtime promises on top of it:

* every hookspec carries a kind (guard, pipeline, effect, resolve);
* services add the hookspecs of their own points before plugins are checked;
* a hookimpl whose name matches no point is refused with the closest valid
  name (unless marked ``optionalhook=True``, for points of a service that
  may not be installed);
* loading is fail-soft: a plugin that raises on import or does not validate
  is recorded with its distribution, version and error, and skipped;
* a plugin that cannot run without a table the configuration lacks is set
  aside as ``not configured`` (recorded with the table to add), so that
  installing it for one agent does not stop the others in its environment;
* call order is pluggy's priority groups (wrappers, tryfirst, plain,
  trylast), and within each group plugins by name, then services by name,
  then the runtime's built-in defaults — whatever the order of registration
  — plus a per-point override from config.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Literal

import attrs
import pluggy
from turnkit_hookspecs import CORE_HOOKSPECS, PROJECT_NAME, PointKind, kind_of

from .config import Config, PluginsConfig
from .discovery import (
    BUILTIN_GROUP,
    PLUGINS_GROUP,
    SERVICES_GROUP,
    Candidate,
    Selection,
    duplicates,
    find,
    normalize,
)
from .errors import PluginLoadError, RequiredPluginError, UnknownPointError
from .registry import Implementation

log = logging.getLogger("turnkit.plugins")

#: Within a priority group: plugins first, then services, then the runtime's own defaults.
_ORIGIN_RANK = {PLUGINS_GROUP: 0, SERVICES_GROUP: 1, BUILTIN_GROUP: 2}

Status = Literal["loaded", "failed", "skipped", "not configured"]


@attrs.define
class PluginRecord:
    """What ``turnkit plugins`` reports about one service or plugin."""

    name: str
    group: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    status: Status = "loaded"
    #: Why it is not loaded: the error, the reason it was skipped, or the table to add.
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)

    def as_json(self) -> dict[str, Any]:
        """The record as ``turnkit plugins --json`` prints it."""
        return attrs.asdict(self)


class PluginManager:
    """Holds the registered services and plugins and the points they implement.

    It is the :class:`~turnkit.registry.Registry` a
    :class:`~turnkit.dispatch.Dispatcher` calls through; the agent owns both.
    """

    def __init__(self, config: PluginsConfig | None = None) -> None:
        self.config = config or PluginsConfig()
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.records: dict[str, PluginRecord] = {}
        #: Bumped on every change of specs or registrations; the dispatcher rebuilds its plans then.
        self.generation = 0
        self._points: dict[str, PointKind] = {}
        self._owners: dict[str, str] = {}
        for module in CORE_HOOKSPECS:
            self.add_hookspecs(module, owner="turnkit")

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        config: Config | PluginsConfig | None = None,
        env: Mapping[str, str] | None = None,
        *,
        strict: bool = True,
    ) -> PluginManager:
        """Discover and register every installed service and plugin.

        With ``strict`` (the agent's mode) a required plugin that did not load
        raises :class:`RequiredPluginError`; without it (``turnkit plugins``)
        the failure is only recorded so it can be shown.
        """
        plugins_config = config.plugins if isinstance(config, Config) else config
        manager = cls(plugins_config)
        manager._load_group(find(SERVICES_GROUP), Selection(allow=None, disable=frozenset()))
        manager._load_group(find(PLUGINS_GROUP), Selection.from_env(os.environ if env is None else env))
        if isinstance(config, Config):
            manager.set_aside_unconfigured(config)
        if strict:
            manager.check_required(config.source if isinstance(config, Config) else None)
        return manager

    def _load_group(self, candidates: list[Candidate], selection: Selection) -> None:
        clashes = duplicates(candidates)
        # Registration order does not decide call order (see implementations);
        # reverse name order keeps pluggy's own hook calls in name order too.
        for index in reversed(range(len(candidates))):
            candidate = candidates[index]
            record = PluginRecord(
                name=candidate.name,
                group=candidate.group,
                distribution=candidate.distribution,
                version=candidate.version,
                module=candidate.module,
            )
            if index in clashes:
                taken = clashes[index].distribution
                self._fail(record, f"entry point name {candidate.name!r} is already used by {taken}")
                # keep the clash visible next to the record of the plugin that won the name
                self.records[f"{record.name} ({record.distribution})"] = self.records.pop(record.name)
                continue
            skipped = selection.why_skipped(candidate)
            if skipped is not None:
                record.status, record.error = "skipped", skipped
                self.records[record.name] = record
                continue
            try:
                loaded = candidate.load()
                plugin = loaded() if inspect.isclass(loaded) else loaded
                if candidate.group == SERVICES_GROUP:
                    self.add_service(plugin, record)
                else:
                    self._register(plugin, record)
            except PluginLoadError as exc:
                self._fail(record, exc.reason)
            except (Exception, SystemExit) as exc:
                log.debug("loading %s failed", candidate.name, exc_info=True)
                where = traceback.extract_tb(exc.__traceback__)[-1]
                self._fail(record, f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status, record.error = "failed", reason
        self.records[record.name] = record
        where = f" ({record.distribution} {record.version})" if record.distribution else ""
        # a required one is not logged: check_required's refusal says the same
        required = {normalize(name) for name in self.config.required}
        if not required & {normalize(record.name), normalize(record.distribution or "")}:
            log.warning("skipping %s%s: %s", record.name, where, reason)

    def check_required(self, source: str | None = None) -> None:
        """Raise :class:`RequiredPluginError` unless every required plugin is loaded.

        ``source`` is the configuration file that requires them, for the message.
        """
        missing = {}
        for name in self.config.required:
            record = self.records.get(name) or self._record_for_distribution(name)
            if record is None:
                missing[name] = "not installed"
            elif record.status != "loaded":
                missing[name] = f"{record.status}: {record.error}"
        if missing:
            raise RequiredPluginError(missing, sorted(self.plugins()), source)

    def _record_for_distribution(self, name: str) -> PluginRecord | None:
        wanted = normalize(name)
        for record in self.records.values():
            if record.distribution and normalize(record.distribution) == wanted:
                return record
        return None

    def is_required(self, name: str) -> bool:
        """Whether ``[plugins] required`` names this plugin, or its distribution."""
        if name in self.config.required:
            return True
        record = self.records.get(name)
        distribution = record.distribution if record is not None else None
        return distribution is not None and normalize(distribution) in map(normalize, self.config.required)

    def set_aside_unconfigured(self, config: Config) -> None:
        """Unregister the plugins whose settings need keys while ``config`` has no table for them.

        Such a plugin is installed but meant for another agent (or not set
        up yet): it is recorded as ``not configured``, with the table to add
        as its ``error``, and implements nothing here. A required plugin
        stays: its missing table is a start error (see the agent).
        """
        for name, plugin in self.plugins().items():
            keys = required_keys(getattr(plugin, "settings_class", None))
            if not keys or name in config.plugin or self.is_required(name):
                continue
            self.pm.unregister(plugin)
            self.generation += 1
            record = self.records[name]
            record.status, record.error = "not configured", f"add {table_hint(name, keys)} to use it"

    # ------------------------------------------------------------------ registration

    def add_hookspecs(self, module_or_class: ModuleType | type, owner: str) -> None:
        """Declare the points in ``module_or_class``; each needs a kind decorator."""
        declared = []
        for attr in dir(module_or_class):
            function = getattr(module_or_class, attr)
            if getattr(function, PROJECT_NAME + "_spec", None) is None:
                continue
            kind = kind_of(function)
            if kind is None:
                raise PluginLoadError(owner, f"point {attr!r} is declared without a kind decorator")
            if attr in self._points:
                raise PluginLoadError(owner, f"point {attr!r} is already declared by {self._owners[attr]}")
            declared.append((attr, kind))
        try:
            self.pm.add_hookspecs(module_or_class)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(owner, str(exc)) from exc
        for name, kind in declared:
            self._points[name] = kind
            self._owners[name] = owner
        self.generation += 1

    def add_service(self, service: object, record: PluginRecord | None = None) -> str:
        """Register a service object: its own points first, then its hookimpls."""
        name = getattr(service, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginLoadError(type(service).__name__, "a service needs a non-empty string 'name'")
        record = record or PluginRecord(name=name, group=SERVICES_GROUP)
        for specs in getattr(service, "hookspecs", ()):
            self.add_hookspecs(specs, owner=f"service {name!r}")
        return self._register(service, record)

    def services(self) -> dict[str, Any]:
        """The loaded service objects by their ``name`` (how their actions are addressed)."""
        loaded = (self.pm.get_plugin(n) for n, r in self.records.items() if r.group == SERVICES_GROUP)
        return {service.name: service for service in loaded if service is not None}

    def plugins(self) -> dict[str, Any]:
        """The loaded plugin objects by name (not services, not the built-in defaults)."""
        loaded = {n: self.pm.get_plugin(n) for n, r in self.records.items() if r.group == PLUGINS_GROUP}
        return {name: plugin for name, plugin in loaded.items() if plugin is not None}

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        group: str = PLUGINS_GROUP,
    ) -> str:
        """Register a plugin object (a module or an instance) and validate its hooks.

        Raises :class:`PluginLoadError` naming the problem; nothing stays
        registered then.
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        record = PluginRecord(name=name, group=group, distribution=distribution)
        return self._register(plugin, record)

    def _register(self, plugin: object, record: PluginRecord) -> str:
        if record.name in self.records and self.records[record.name].status == "loaded":
            raise PluginLoadError(record.name, "a plugin or service of that name is already registered")
        try:
            self.pm.register(plugin, name=record.name)
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(record.name, self._invalid_impl(str(exc))) from exc
        except ValueError as exc:
            raise PluginLoadError(record.name, str(exc)) from exc
        problems = list(self._hook_problems(plugin))
        if problems:
            self.pm.unregister(plugin)
            raise PluginLoadError(record.name, "; ".join(problems))
        record.status, record.error = "loaded", None
        record.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or ())
        self.records[record.name] = record
        self.generation += 1
        return record.name

    def _hook_problems(self, plugin: object) -> Iterable[str]:
        for caller in self.pm.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                if caller.spec is None and not impl.optionalhook:
                    yield self._unknown_hook(caller.name)
                if impl.hookwrapper:
                    yield f"{caller.name}: old-style hookwrapper=True is not supported, use wrapper=True"
                if impl.wrapper and not inspect.isgeneratorfunction(impl.function):
                    yield f"{caller.name}: a wrapper must be a (sync) generator function"

    def _invalid_impl(self, message: str) -> str:
        """Flatten pluggy's multi-line complaint and say which arguments the point offers."""
        text = " ".join(message.split())
        hook = re.search(r"for hook '(\w+)'", text)
        if hook and hook.group(1) in self._points:
            offered = getattr(self.pm.hook, hook.group(1)).spec.argnames
            text += f" (the point offers: {', '.join(offered)})"
        return text

    def _unknown_hook(self, hook: str) -> str:
        close = difflib.get_close_matches(hook, list(self._points), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"implements unknown hook {hook!r}{hint} "
            "(mark it optionalhook=True if it belongs to a service that may be absent)"
        )

    def unregister(self, name: str) -> None:
        """Remove a registered plugin or service by name."""
        self.pm.unregister(name=name)
        self.records.pop(name, None)
        self.generation += 1

    # ------------------------------------------------------------------ introspection

    def points(self) -> Mapping[str, PointKind]:
        """Every declared point and its kind."""
        return self._points

    def point(self, name: str) -> PointKind:
        """The kind of ``name``, or :class:`UnknownPointError` with the closest name."""
        try:
            return self._points[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._points), n=1, cutoff=0.6)
            raise UnknownPointError(name, close[0] if close else None) from None

    def owner(self, point: str) -> str:
        """Who declared ``point``: ``turnkit`` or ``service 'name'``."""
        return self._owners[point]

    def spec_doc(self, point: str) -> str:
        """The docstring of a point's hookspec."""
        self.point(point)
        spec = getattr(self.pm.hook, point).spec
        return inspect.getdoc(spec.function) or ""

    def implementations(self, point: str) -> list[Implementation]:
        """The implementations of ``point`` in exact call order (wrappers first).

        pluggy orders a priority group by registration, and its ``trylast``
        group the other way round; the order here depends on names only, so
        an agent built in code calls hooks in the order discovery gives.
        """
        self.point(point)
        caller = getattr(self.pm.hook, point)
        impls = [self._describe(impl) for impl in reversed(caller.get_hookimpls())]
        wrappers = sorted((i for i in impls if i.wrapper), key=self._call_rank)
        plain = sorted((i for i in impls if not i.wrapper), key=self._call_rank)
        preferred = list(dict.fromkeys(self.config.order.get(point, [])))
        first = [i for name in preferred for i in plain if i.plugin == name]
        rest = [i for i in plain if i.plugin not in preferred]
        return wrappers + first + rest

    def describe_point(self, name: str) -> dict[str, Any]:
        """``name``'s kind, who declared it, its summary and its implementations in call order,
        as ``turnkit hooks --json`` prints it and the console shows it."""
        kind = self.point(name)
        doc = self.spec_doc(name)
        implementations = []
        for impl in self.implementations(name):
            flags = [
                flag
                for flag, on in (
                    ("wrapper", impl.wrapper),
                    ("tryfirst", impl.tryfirst),
                    ("trylast", impl.trylast),
                    ("async", impl.is_async),
                )
                if on
            ]
            implementations.append(
                {
                    "plugin": impl.plugin,
                    "distribution": impl.distribution,
                    "function": impl.qualname,
                    "flags": flags,
                }
            )
        return {
            "point": name,
            "kind": kind.kind.value,
            "value": kind.value,
            "declared_by": self.owner(name),
            "summary": doc.splitlines()[0] if doc else "",
            "implementations": implementations,
        }

    def _call_rank(self, impl: Implementation) -> tuple[int, int, str]:
        """Priority group, then plugins before services before built-ins, then name."""
        group = 0 if impl.tryfirst else 2 if impl.trylast else 1
        record = self.records.get(impl.plugin)
        origin = _ORIGIN_RANK.get(record.group if record else PLUGINS_GROUP, 0)
        return group, origin, impl.plugin

    def order_problems(self) -> list[str]:
        """Config order overrides naming unknown points or plugins that do not implement them."""
        problems = []
        for point, names in self.config.order.items():
            if point not in self._points:
                problems.append(f"plugins.order.{point}: no such point")
                continue
            present = {i.plugin for i in self.implementations(point)}
            problems += [
                f"plugins.order.{point}: {name!r} does not implement it here"
                for name in names
                if name not in present
            ]
        return problems

    def timeout_problems(self) -> list[str]:
        """``[plugins] timeouts`` keys that are not points: a typo would leave the default limit."""
        problems = []
        for point in self.config.timeouts:
            try:
                self.point(point)
            except UnknownPointError as exc:
                problems.append(f"{exc} @ $.plugins.timeouts[{point!r}]")
        return problems

    def _describe(self, impl: pluggy.HookImpl) -> Implementation:
        record = self.records.get(impl.plugin_name)
        return Implementation(
            plugin=impl.plugin_name,
            distribution=record.distribution if record else None,
            function=impl.function,
            argnames=tuple(impl.argnames),
            is_async=inspect.iscoroutinefunction(impl.function),
            wrapper=impl.wrapper,
            tryfirst=impl.tryfirst,
            trylast=impl.trylast,
            trusted=record is not None and record.group != PLUGINS_GROUP,
        )


def required_keys(settings_class: type | None) -> list[str]:
    """The keys of a plugin's ``settings_class`` that have no default (its table must give them)."""
    if settings_class is None or not attrs.has(settings_class):
        return []
    fields = attrs.fields(settings_class)
    return [field.name for field in fields if field.init and field.default is attrs.NOTHING]


def table_hint(name: str, keys: Iterable[str]) -> str:
    """The table a plugin needs, as a user would write it: ``[plugin.openai] model = …``."""
    return f"[plugin.{name}] " + ", ".join(f"{key} = …" for key in keys)
