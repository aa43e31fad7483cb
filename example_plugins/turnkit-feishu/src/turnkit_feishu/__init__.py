"""turnkit-feishu: a Feishu (or Lark) bot as a chat channel of the agent.

Registered through the ``turnkit.channels`` entry point
``feishu = "turnkit_feishu:FeishuChannel"``; the chat service creates the
channel when ``feishu`` is listed in ``[service.chat] channels`` (next to
``http``, whose server receives the events) and structures
``[service.chat.channel.feishu]`` into :class:`FeishuSettings`. Feishu
pushes events to the channel's route (event subscription over HTTP,
signed and encrypted with the app's Encrypt Key); the channel stores each
message durably before acknowledging it, and replies through the open
platform's message API with the app's tenant access token.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .access_token import TenantToken
from .api import FeishuApi
from .channel import FeishuChannel, reply_uuid
from .content import text_of
from .crypto import DecryptError, decrypt, signature
from .errors import FeishuError, Malformed, Refused
from .events import MESSAGE_RECEIVED, ReceivedMessage, event_type, received_message
from .ratelimit import ChatRateLimiter
from .settings import DEFAULT_BASE_URL, FeishuSettings, Secrets
from .verify import RequestVerifier

try:
    __version__ = version("turnkit-feishu")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_BASE_URL",
    "MESSAGE_RECEIVED",
    "ChatRateLimiter",
    "DecryptError",
    "FeishuApi",
    "FeishuChannel",
    "FeishuError",
    "FeishuSettings",
    "Malformed",
    "ReceivedMessage",
    "Refused",
    "RequestVerifier",
    "Secrets",
    "TenantToken",
    "__version__",
    "decrypt",
    "event_type",
    "received_message",
    "reply_uuid",
    "signature",
    "text_of",
]
