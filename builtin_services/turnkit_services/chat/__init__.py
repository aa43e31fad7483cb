"""The chat service: conversations over channels (terminal, HTTP API, Telegram, OpenAI-compatible).

What a channel distribution builds on is exported here: :class:`Channel`,
the :class:`ChatPath` it calls, :class:`Inbox` for pushed events,
:func:`split_text`, :func:`chat_key` and :class:`LineReader` (stdin's lines,
for a channel serving a protocol over it); its routes raise
:class:`~turnkit_services.chat.http_errors.ApiError` (imported from there,
so that importing the chat service never imports the web framework).
``docs/channel-guide.md`` is the guide.
"""

from .channel import Channel, ChatOutcome, ChatPath, split_text
from .inbox import Inbox
from .lines import LineReader
from .service import ChatService, chat_key
from .settings import ChatSettings

__all__ = [
    "Channel",
    "ChatOutcome",
    "ChatPath",
    "ChatService",
    "ChatSettings",
    "Inbox",
    "LineReader",
    "chat_key",
    "split_text",
]
