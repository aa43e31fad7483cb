"""Which values are secret, and replacing them by ``[secret]`` before they are stored or logged.

A tool's output, a provider's error or a log line may carry a credential
the agent holds (``cat /proc/<pid>/environ`` prints its whole environment).
:class:`Secrets` knows the agent's secret values and scrubs text, plain
data and contract values; the store scrubs what it writes through it and
the agent registers it with :func:`protect_logs`, which scrubs every log
record of the process.

The secret values are those of the environment variables that
``[secrets] env`` names or that any setting ending in ``_env`` names (in
the services' and plugins' tables, defaults included once their settings
are structured: Telegram's ``token_env``, turnkit-openai's
``api_key_env``; every value of such a table, as turnkit-mcp's
``headers_env``), those of a list ``env`` passing variables on by name
whose names are credentials' (``env = ["GITHUB_TOKEN"]``), and settings
holding a credential themselves (``token``, ``api_key``, ``password``,
``secret`` and names ending in them, such as the HTTP channel's ``token``
or an ``API_TOKEN`` in a command's ``env``).
Values shorter than :data:`MIN_LENGTH` are left alone: scrubbing them
would shred ordinary text.

Each value is looked for as it is, JSON-escaped (how it appears in a tool
output rendered as JSON) and percent-encoded (how it appears in a URL). A
base64 form is not looked for: it depends on the bytes around the value,
so only its exact encoding on its own could be matched, and that is rarely
what leaks.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

import attrs
from turnkit_hookspecs import structure, to_json, unstructure

if TYPE_CHECKING:
    from .config import Config

V = TypeVar("V")

#: What a secret value is replaced by.
MARK = "[secret]"
#: Values shorter than this are not scrubbed (a short value would match ordinary words).
MIN_LENGTH = 6
#: A setting whose lowercase name is one of these, or ends in ``_`` and one of these, holds a credential.
CREDENTIAL_NAMES = ("token", "api_key", "password", "secret")


class Secrets:
    """The agent's secret values, and scrubbing them out of text and data.

    Empty (false) when no secret is configured or set: the callers test it
    first, so an agent without secrets pays nothing. Values can be added
    while the agent starts (settings are structured one by one); readers on
    other threads (logging) see either the old or the new set, never half.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        #: Every form of every value, longest first (so a value holding another is replaced whole).
        self._forms: tuple[str, ...] = ()
        #: The forms as they appear inside a JSON string, for the cheap "is anything here?" test.
        self._json_forms: tuple[str, ...] = ()
        self.add(values)

    @classmethod
    def of(cls, config: Config, env: Mapping[str, str]) -> Secrets:
        """The secrets ``config`` declares (``[secrets] env``, its tables' settings) as set in ``env``."""
        secrets = cls()
        secrets.add(env.get(name, "") for name in config.secrets.env)
        secrets.add_settings(config.service, env)
        secrets.add_settings(config.plugin, env)
        return secrets

    def add(self, values: Iterable[str]) -> None:
        """Treat ``values`` as secret too (those shorter than :data:`MIN_LENGTH` are skipped)."""
        fresh = {value for value in values if len(value) >= MIN_LENGTH} - self._values
        if not fresh:
            return
        self._values |= fresh
        forms = {form for value in self._values for form in _forms(value)}
        ordered = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        self._json_forms = tuple(dict.fromkeys(_json_escaped(form) for form in ordered))
        self._forms = ordered

    def add_settings(self, settings: object, env: Mapping[str, str]) -> None:
        """Add the secrets a settings object or table holds or names (see the module docstring)."""
        self.add(
            env.get(value, "") if kind == "env" else value for kind, value in _credential_settings(settings)
        )

    def __bool__(self) -> bool:
        return bool(self._forms)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by :data:`MARK`."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MARK)
        return text

    def scrub_data(self, data: V) -> V:
        """Plain data (JSON-like: dicts, lists, strings …) with every string scrubbed, keys too."""
        if not self._forms:
            return data
        return cast(V, _scrub_data(data, self.scrub))

    def encode(self, value: V) -> tuple[V, str]:
        """A contract value (a ``Message``, a ``Deny`` …) scrubbed, and its JSON.

        The JSON is looked at first, so a value holding no secret costs one
        substring search per form beyond encoding it; one holding a secret
        is rebuilt from its scrubbed plain data.
        """
        text = to_json(value)
        if not any(form in text for form in self._json_forms):
            return value, text
        clean = structure(self.scrub_data(unstructure(value)), type(value))
        return clean, to_json(clean)


def _forms(value: str) -> set[str]:
    """How ``value`` may appear in text: as it is, JSON-escaped (both ways) and percent-encoded."""
    return {value, _json_escaped(value), json.dumps(value)[1:-1], quote(value, safe="")}


def _json_escaped(text: str) -> str:
    """``text`` as it appears between the quotes of a JSON string the runtime writes."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _scrub_data(data: object, scrub: Callable[[str], str]) -> object:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, Mapping):
        return {_scrub_data(key, scrub): _scrub_data(item, scrub) for key, item in data.items()}
    if isinstance(data, list):
        return [_scrub_data(item, scrub) for item in data]
    if isinstance(data, tuple):
        return tuple(_scrub_data(item, scrub) for item in data)
    return data


def is_credential(name: str) -> bool:
    """Whether a setting called ``name`` holds a credential (see :data:`CREDENTIAL_NAMES`)."""
    lowered = name.lower()
    return any(lowered == word or lowered.endswith("_" + word) for word in CREDENTIAL_NAMES)


def _credential_settings(settings: object) -> Iterator[tuple[str, str]]:
    """``("env", NAME)`` for each ``*_env`` setting naming a variable, ``("value", V)`` for each
    credential held in a setting, found anywhere in a settings object, table or list."""
    cls = type(settings)
    if attrs.has(cls):
        items: Iterable[tuple[object, object]] = (
            (field.name, getattr(settings, field.name)) for field in attrs.fields(cls)
        )
    elif isinstance(settings, Mapping):
        items = settings.items()
    elif isinstance(settings, list | tuple):
        items = ((None, item) for item in settings)
    else:
        return
    for name, value in items:
        named = name.lower() if isinstance(name, str) else ""
        if named.endswith("_env") and isinstance(value, Mapping):
            # a table of variables' names (turnkit-mcp's headers_env: a header -> the variable of its value)
            yield from (("env", variable) for variable in value.values() if isinstance(variable, str))
        elif named == "env" and isinstance(value, list | tuple):
            # variables passed on by name (a server's env = ["GITHUB_TOKEN"]): those named as credentials
            yield from (
                ("env", variable)
                for variable in value
                if isinstance(variable, str) and is_credential(variable)
            )
        elif not isinstance(value, str):
            yield from _credential_settings(value)
        elif named.endswith("_env"):
            yield "env", value
        elif is_credential(named):
            yield "value", value


# ---------------------------------------------------------------- logging

#: The secrets of the agents of this process whose logs are scrubbed, held weakly: an agent
#: that is gone stops costing anything. A tuple, replaced whole, so that logging threads read
#: it without a lock.
_protected: tuple[weakref.ref[Secrets], ...] = ()
_lock = threading.Lock()
_factory_installed = False


def protect_logs(secrets: Secrets) -> None:
    """Scrub ``secrets`` out of every log record this process makes from now on.

    A log record factory does it when the record is made, whatever logger
    made it (the runtime's, a service's, a plugin's, httpx's) and wherever
    its handlers send it: the formatted message, the exception text and the
    stack text. Only records that hold a secret are changed: their message
    is kept formatted, with no arguments left, and their exception text is
    set (formatters print that rather than format the exception again).
    """
    global _protected, _factory_installed
    with _lock:
        if not _factory_installed:
            _install_factory()
            _factory_installed = True
        alive = tuple(ref for ref in _protected if ref() is not None and ref() is not secrets)
        _protected = (*alive, weakref.ref(secrets))


def _install_factory() -> None:
    """Wrap the current record factory; records made while no secret is known are left as they are."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        active = [secrets for ref in _protected if (secrets := ref()) is not None and secrets]
        if active:
            _scrub_record(record, active)
        return record

    logging.setLogRecordFactory(factory)


def _scrub_record(record: logging.LogRecord, active: list[Secrets]) -> None:
    def scrub(text: str) -> str:
        for secrets in active:
            text = secrets.scrub(text)
        return text

    try:
        message = record.getMessage()
    except Exception:  # the handler would print the arguments with its complaint
        message = f"{record.msg!s} (log arguments that do not fit the message: {record.args!r})"
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = scrub(text)
        if clean != text:
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
