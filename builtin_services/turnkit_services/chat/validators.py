"""attrs validators for channel settings: what every channel's table has (a URL, a route, an id).

Channel distributions structure their ``[service.chat.channel.NAME]``
tables with attrs; a value these refuse stops the agent at start with the
table and the setting named, instead of failing at the first message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs


def http_url(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    """An ``http://`` or ``https://`` URL with a host (a platform's API)."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{attribute.name} must be an http:// or https:// URL, got {value!r}")


def not_blank(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    """A non-empty text (an app id, the name of an environment variable)."""
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def route_path(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    """A path on the agent's HTTP server (where the platform posts)."""
    if not value.startswith("/"):
        raise ValueError(f"{attribute.name} must start with '/', got {value!r}")
