"""The ``[plugin.openai]`` table of the agent's configuration.

The runtime structures the table into :class:`OpenAISettings` before the
agent starts; a wrong key, a wrong type or a value the validators refuse
stops the start with the key path. Whether the API key is really in the
environment is checked later, in ``OpenAIPlugin.configure``, because only the
execution context knows the agent's environment.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import attrs

#: Where the requests go when ``base_url`` is not set.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The environment variable read for the key when ``api_key_env`` is not set.
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
#: Request fields the plugin writes itself, which ``params`` may not override.
OWN_FIELDS = frozenset({"model", "messages", "tools", "stream", "temperature", "max_tokens"})


def _http_url(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{attribute.name} must be an http:// or https:// URL, got {value!r}")


def _not_blank(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value!r}")


def _not_negative(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _temperature(_: Any, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is not None and not 0 <= value <= 2:
        raise ValueError(f"{attribute.name} must be between 0 and 2, got {value!r}")


def _no_credentials(_: Any, attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
    for name in value:
        if name.lower() in {"authorization", "api-key", "x-api-key"}:
            raise ValueError(
                f"{attribute.name} must not carry the key ({name!r}): keep it in the environment "
                "and name the variable with api_key_env"
            )


def _own_fields(_: Any, attribute: attrs.Attribute[dict[str, Any]], value: dict[str, Any]) -> None:
    taken = sorted(OWN_FIELDS & set(value))
    if taken:
        raise ValueError(f"{attribute.name} must not set {', '.join(taken)}: the plugin sets them itself")


@attrs.frozen
class OpenAISettings:
    """How to reach an OpenAI-compatible Chat Completions server, and what to ask it for.

    ``stream`` left unset streams exactly when someone listens to the turn;
    ``true`` always asks for a stream (some servers answer long generations
    sooner that way), ``false`` never does (the listener then gets the whole
    text at once). ``backoff`` is the first wait between two attempts,
    doubled each time with jitter and never beyond ``backoff_max``; a
    server's ``Retry-After`` is waited for, unless it asks for more than
    ``backoff_max``, which ends the retries at once.
    """

    model: str = attrs.field(validator=_not_blank)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, validator=_http_url)
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout: float = attrs.field(default=60.0, validator=_positive)
    max_retries: int = attrs.field(default=2, validator=_not_negative)
    backoff: float = attrs.field(default=0.5, validator=_not_negative)
    backoff_max: float = attrs.field(default=30.0, validator=_not_negative)
    temperature: float | None = attrs.field(default=None, validator=_temperature)
    max_tokens: int | None = attrs.field(default=None, validator=_positive)
    stream: bool | None = None
    headers: dict[str, str] = attrs.field(factory=dict, validator=_no_credentials)
    params: dict[str, Any] = attrs.field(factory=dict, validator=_own_fields)

    @property
    def completions_url(self) -> str:
        """The Chat Completions endpoint under ``base_url``."""
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def loopback(self) -> bool:
        """Whether ``base_url`` names this machine (a local server needs no key)."""
        return is_loopback(urlsplit(self.base_url).hostname or "")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
