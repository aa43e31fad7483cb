"""turnkit-redact: keep e-mail addresses, phone numbers and card numbers out of the model.

Registered through the ``turnkit.plugins`` entry point ``redact``, which names
:class:`RedactPlugin`: the runtime makes one instance per agent and sets its
``[plugin.redact]`` settings (:class:`RedactSettings`: which kinds, which
placeholders). It implements four pipeline points:

* ``turn_inbound`` -- the user's message is redacted before later plugins and
  the prompt see it;
* ``turn_prompt`` -- the whole prompt is redacted, history included, last of
  all, so the model never sees the original values;
* ``turn_outbound`` -- the assistant's reply is redacted before it is stored
  and delivered;
* ``memory_store`` (the memory service's, optional) -- a memory is redacted
  before it is embedded and written.

Streamed reply chunks (``turn_chunk``) are not redacted: see the README.

The module-level ``turn_inbound`` and ``turn_outbound`` keep the module
usable as a plugin registered by hand, with the default settings.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .patterns import (
    CARD_PLACEHOLDER,
    EMAIL_PLACEHOLDER,
    PHONE_PLACEHOLDER,
    luhn_valid,
    redact_cards,
    redact_emails,
    redact_phones,
    redact_text,
)
from .plugin import (
    RedactPlugin,
    TextRecord,
    redact_block,
    redact_memory,
    redact_message,
    redact_prompt,
    turn_inbound,
    turn_outbound,
)
from .settings import DEFAULT_SETTINGS, RedactSettings

try:
    __version__ = version("turnkit-redact")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CARD_PLACEHOLDER",
    "DEFAULT_SETTINGS",
    "EMAIL_PLACEHOLDER",
    "PHONE_PLACEHOLDER",
    "RedactPlugin",
    "RedactSettings",
    "TextRecord",
    "__version__",
    "luhn_valid",
    "redact_block",
    "redact_cards",
    "redact_emails",
    "redact_memory",
    "redact_message",
    "redact_phones",
    "redact_prompt",
    "redact_text",
    "turn_inbound",
    "turn_outbound",
]
