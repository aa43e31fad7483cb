"""The ``[service.chat.channel.onebot]`` table of the agent's configuration.

The chat service structures the table into :class:`OneBotSettings` when the
agent starts serving; a key not declared here, a wrong type or a value the
validators refuse stops the start with the key's path. Whether the access
token's environment variable is set is looked up later, by the channel,
because only the execution context knows the agent's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from attrs.validators import ge, gt, le

#: The table's name, as error messages quote it.
TABLE = "[service.chat.channel.onebot]"
#: Where the OneBot implementation connects: its universal client (events and API calls on one socket).
DEFAULT_PATH = "/onebot/v11/ws"
#: The environment variable read for the access token when ``access_token`` is not set.
DEFAULT_ACCESS_TOKEN_ENV = "ONEBOT_ACCESS_TOKEN"


def _route_path(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(f"{attribute.name} must be a URL path starting with '/', got {value!r}")


def _not_blank(_: Any, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{attribute.name} must not be empty: leave it out to read {attribute.name}_env")


@attrs.frozen
class OneBotSettings:
    """How the OneBot implementation reaches the agent, and how the agent answers it.

    ``access_token`` (or the environment variable named by
    ``access_token_env``) is what the implementation must present when it
    connects; without one, only connections from this machine are
    accepted. ``group_require_at`` makes the bot answer in a group only
    when it is @-mentioned. ``max_length`` is the longest message sent in
    one piece (characters); ``call_timeout`` how long, in seconds, a send
    waits for the implementation's answer (and for the bot to connect);
    ``lease_ttl`` how long an accepted message waits to be taken up by
    another worker after the one that accepted it died.
    """

    access_token: str | None = attrs.field(default=None, validator=_not_blank)
    access_token_env: str = DEFAULT_ACCESS_TOKEN_ENV
    path: str = attrs.field(default=DEFAULT_PATH, validator=_route_path)
    group_require_at: bool = True
    max_length: int = attrs.field(default=3000, validator=[ge(1), le(100_000)])
    call_timeout: float = attrs.field(default=10.0, validator=[gt(0), le(600)])
    lease_ttl: float = attrs.field(default=10.0, validator=[gt(0), le(86_400)])

    def token(self, env: Mapping[str, str]) -> str | None:
        """The access token: ``access_token``, else the environment variable's value, else ``None``."""
        if self.access_token is not None:
            return self.access_token
        value = env.get(self.access_token_env, "") if self.access_token_env else ""
        return value if value.strip() else None
