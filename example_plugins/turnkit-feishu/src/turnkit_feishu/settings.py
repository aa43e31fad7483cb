"""The ``[service.chat.channel.feishu]`` table of the agent's configuration.

The chat service structures the table into :class:`FeishuSettings` when it
creates the channel; a wrong key, a wrong type or a value the validators
refuse stops the start with the table named. Whether the secrets are really
there (in the table or in the environment) is checked by the channel, which
alone sees the agent's environment: :meth:`FeishuSettings.secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from attrs.validators import gt, le
from turnkit_services.chat.validators import http_url, not_blank, route_path

#: The configuration table, as error messages name it.
TABLE = "[service.chat.channel.feishu]"
#: Feishu's open platform; Lark's is https://open.larksuite.com.
DEFAULT_BASE_URL = "https://open.feishu.cn"
DEFAULT_PATH = "/channels/feishu/events"
DEFAULT_APP_SECRET_ENV = "FEISHU_APP_SECRET"
DEFAULT_ENCRYPT_KEY_ENV = "FEISHU_ENCRYPT_KEY"
#: Characters of one reply message. A text message may be about 150 KB of request body; 4000
#: characters stay far below it in any script, and read as one message in a chat window.
DEFAULT_MAX_LENGTH = 4000
#: The most ``max_length`` may be: 20000 characters of the worst kind (a control character,
#: escaped twice: once inside ``content``, once in the request) are 140 KB, under Feishu's 150 KB.
MAX_LENGTH_LIMIT = 20000


@attrs.frozen
class Secrets:
    """The credentials the channel works with, resolved from the settings and the environment."""

    app_secret: str
    encrypt_key: str | None
    verification_token: str | None


@attrs.frozen
class FeishuSettings:
    """A Feishu (or Lark) app's credentials and how the channel talks to the open platform.

    ``app_secret`` (or the environment variable ``app_secret_env`` names)
    buys the tenant access token replies are sent with. ``encrypt_key`` (or
    ``encrypt_key_env``) is the console's Encrypt Key: with it, events
    arrive encrypted and signed, and requests whose signature is wrong or
    whose timestamp is more than ``replay_window`` seconds away from now
    are refused. Without it, the console's ``verification_token`` must be
    set and is compared with the token in each event; with neither, the
    channel does not start. ``lease_ttl`` is how long a killed worker's
    accepted events wait before another worker (or its restart) answers them.
    """

    app_id: str = attrs.field(validator=not_blank)
    app_secret: str | None = None
    app_secret_env: str = DEFAULT_APP_SECRET_ENV
    encrypt_key: str | None = None
    encrypt_key_env: str = DEFAULT_ENCRYPT_KEY_ENV
    verification_token: str | None = None
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, validator=http_url)
    path: str = attrs.field(default=DEFAULT_PATH, validator=route_path)
    max_length: int = attrs.field(default=DEFAULT_MAX_LENGTH, validator=[gt(0), le(MAX_LENGTH_LIMIT)])
    lease_ttl: float = attrs.field(default=10.0, validator=gt(0))
    replay_window: float = attrs.field(default=300.0, validator=gt(0))

    def secrets(self, env: Mapping[str, str]) -> Secrets:
        """The credentials, the table's own first, else the environment's; ValueError if missing."""
        app_secret = self.app_secret or env.get(self.app_secret_env)
        if not app_secret:
            raise ValueError(
                f"{TABLE}: no app secret: set app_secret, or the environment variable {self.app_secret_env}"
            )
        encrypt_key = self.encrypt_key or env.get(self.encrypt_key_env) or None
        token = self.verification_token or None
        if encrypt_key is None and token is None:
            raise ValueError(
                f"{TABLE}: no way to tell Feishu's requests from forged ones: set encrypt_key (or the"
                f" environment variable {self.encrypt_key_env}) or verification_token, as the app's"
                " console shows them under Events and callbacks > Encryption strategy"
            )
        return Secrets(app_secret, encrypt_key, token)
