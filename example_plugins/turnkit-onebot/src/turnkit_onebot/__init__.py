"""turnkit-onebot: a QQ bot through a OneBot v11 implementation's reverse WebSocket.

Registered through the ``turnkit.channels`` entry point
``onebot = "turnkit_onebot:OneBotChannel"``; the chat service makes the
channel when ``onebot`` is listed in ``[service.chat] channels`` (beside
``http``, whose server the socket is served on) and structures
``[service.chat.channel.onebot]`` into :class:`OneBotSettings`. The
implementation (NapCat, LLOneBot, Lagrange …) connects to ``path``; private
messages, and group messages that @-mention the bot, become turns, and the
replies go back over the same socket as ``send_private_msg`` /
``send_group_msg`` calls.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .channel import OneBotChannel
from .connection import BotConnection, CallFailed, Connections, succeeded
from .events import CHANNEL, Address, Incoming, incoming, number
from .handshake import Refused, admit, is_loopback, presented_token
from .message import Segment, parse_cq, plain_text, segments, text_message, unescape
from .settings import DEFAULT_ACCESS_TOKEN_ENV, DEFAULT_PATH, TABLE, OneBotSettings

try:
    __version__ = version("turnkit-onebot")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CHANNEL",
    "DEFAULT_ACCESS_TOKEN_ENV",
    "DEFAULT_PATH",
    "TABLE",
    "Address",
    "BotConnection",
    "CallFailed",
    "Connections",
    "Incoming",
    "OneBotChannel",
    "OneBotSettings",
    "Refused",
    "Segment",
    "__version__",
    "admit",
    "incoming",
    "is_loopback",
    "number",
    "parse_cq",
    "plain_text",
    "presented_token",
    "segments",
    "succeeded",
    "text_message",
    "unescape",
]
