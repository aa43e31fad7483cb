"""The chat service: conversations over channels (terminal, HTTP API, Telegram, OpenAI-compatible)."""

from .channel import Channel, ChatOutcome, split_text
from .service import ChatService
from .settings import ChatSettings

__all__ = ["Channel", "ChatOutcome", "ChatService", "ChatSettings", "split_text"]
