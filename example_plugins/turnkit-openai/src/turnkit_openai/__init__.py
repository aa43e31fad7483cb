"""turnkit-openai: an OpenAI-compatible Chat Completions server as the agent's model.

Registered through the ``turnkit.plugins`` entry point
``openai = "turnkit_openai:OpenAIPlugin"``; the runtime makes one
:class:`OpenAIPlugin` per agent and structures ``[plugin.openai]`` into
:class:`OpenAISettings`. The plugin answers the resolve point ``turn_reply``:
it sends the prompt (messages and tools) to ``{base_url}/chat/completions``
with httpx, streams the text to the turn's listener when there is one, and
returns the answer as a turnkit ``Message`` — text, or tool calls that the
runtime runs before asking again.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .client import CompletionsClient
from .errors import CompletionError, MissingKeyError, server_message
from .names import FunctionNames, function_name
from .plugin import OpenAIPlugin
from .reply import ReplyBuilder, ReplyFormatError
from .request import chat_messages, chat_request
from .retry import asked_wait, retry_delay, retryable_status
from .settings import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL, OpenAISettings, is_loopback
from .sse import event_data

try:
    __version__ = version("turnkit-openai")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "CompletionError",
    "CompletionsClient",
    "FunctionNames",
    "MissingKeyError",
    "OpenAIPlugin",
    "OpenAISettings",
    "ReplyBuilder",
    "ReplyFormatError",
    "__version__",
    "asked_wait",
    "chat_messages",
    "chat_request",
    "event_data",
    "function_name",
    "is_loopback",
    "retry_delay",
    "retryable_status",
    "server_message",
]
