"""The ``[service.chat.channel.qq]`` table of the agent's configuration.

The chat service structures the table into :class:`QQSettings` when the
agent serves; a key not declared here, a wrong type or a value the
validators refuse stops the start with the key path. Whether the bot secret
is really there is checked by the channel itself, because only the
execution context knows the agent's environment.
"""

from __future__ import annotations

import attrs
from turnkit_services.chat.validators import http_url, not_blank, route_path

#: The table, as the error messages name it.
TABLE = "[service.chat.channel.qq]"
#: The OpenAPI of the QQ Bot platform; its sandbox is ``https://sandbox.api.sgroup.qq.com``.
DEFAULT_API_BASE = "https://api.sgroup.qq.com"
#: Where an app access token is asked for.
DEFAULT_TOKEN_URL = "https://bots.qq.com/app/getAppAccessToken"
#: The environment variable read for the bot secret when ``app_secret`` is not set.
DEFAULT_SECRET_ENV = "QQ_BOT_SECRET"


@attrs.frozen
class QQSettings:
    """Which bot this is, where its platform is, and how the channel answers it.

    ``app_secret`` is the bot's AppSecret from the QQ open platform console:
    it both asks for access tokens and derives the Ed25519 key the callbacks
    are signed with. ``replay_window`` is how far, in seconds, a callback's
    ``X-Signature-Timestamp`` may be from this machine's clock; a signed
    request captured on the way is refused once it is older. ``max_length``
    is the longest reply part, in characters.
    """

    app_id: str = attrs.field(validator=not_blank)
    app_secret: str | None = None
    app_secret_env: str = attrs.field(default=DEFAULT_SECRET_ENV, validator=not_blank)
    api_base: str = attrs.field(default=DEFAULT_API_BASE, validator=http_url)
    token_url: str = attrs.field(default=DEFAULT_TOKEN_URL, validator=http_url)
    path: str = attrs.field(default="/channels/qq/webhook", validator=route_path)
    max_length: int = attrs.field(default=2000, validator=attrs.validators.ge(1))
    lease_ttl: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    replay_window: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
