"""turnkit-qq: a QQ bot (official QQ Bot API v2, webhook mode) as a turnkit chat channel.

Registered through the ``turnkit.channels`` entry point
``qq = "turnkit_qq:QQChannel"``; it runs when ``qq`` is listed in
``[service.chat] channels`` beside ``http``, whose server receives the
platform's callbacks, with its settings from ``[service.chat.channel.qq]``
(:class:`QQSettings`). Users' direct messages and group messages that
mention the bot become turns; the replies go back as passive replies.
:mod:`turnkit_qq.channel` tells how a callback travels.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .channel import QQChannel
from .errors import DUPLICATE_SEQ, QQApiError
from .events import ACK, C2C_MESSAGE, GROUP_AT_MESSAGE, Received, payload_of, received_of
from .openapi import OpenApi
from .replies import REPLY_LIMIT, REPLY_WINDOW, ReplyTarget
from .settings import DEFAULT_API_BASE, DEFAULT_SECRET_ENV, DEFAULT_TOKEN_URL, QQSettings
from .signing import bot_key, sign_validation, validation_token_shape, verify_callback
from .tokens import AccessTokens

try:
    __version__ = version("turnkit-qq")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "ACK",
    "C2C_MESSAGE",
    "DEFAULT_API_BASE",
    "DEFAULT_SECRET_ENV",
    "DEFAULT_TOKEN_URL",
    "DUPLICATE_SEQ",
    "GROUP_AT_MESSAGE",
    "REPLY_LIMIT",
    "REPLY_WINDOW",
    "AccessTokens",
    "OpenApi",
    "QQApiError",
    "QQChannel",
    "QQSettings",
    "Received",
    "ReplyTarget",
    "__version__",
    "bot_key",
    "payload_of",
    "received_of",
    "sign_validation",
    "validation_token_shape",
    "verify_callback",
]
