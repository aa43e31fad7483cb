"""turnkit-redact: keep e-mail addresses, phone numbers and card numbers out of the model.

Registered through the ``turnkit.plugins`` entry point ``redact``; this module
is the plugin. It implements two pipeline points of the turnkit contract:

* ``turn_inbound`` -- the user's message is redacted before the prompt is built,
  so the model never sees the original values;
* ``turn_outbound`` -- the assistant's reply is redacted before it is stored
  and delivered.

Both return a new :class:`~turnkit_hookspecs.Message` with every
:class:`~turnkit_hookspecs.TextBlock` redacted, or ``None`` (unchanged) when
there was nothing to redact. Other blocks (images, tool calls …) are kept as
they are.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import attrs
from turnkit_hookspecs import Message, TextBlock, hookimpl

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

try:
    __version__ = version("turnkit-redact")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"


def redact_message(message: Message) -> Message | None:
    """Return ``message`` with its text blocks redacted, or ``None`` if nothing changed."""
    changed = False
    blocks = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            text = redact_text(block.text)
            if text != block.text:
                block = TextBlock(text)
                changed = True
        blocks.append(block)
    return attrs.evolve(message, blocks=tuple(blocks)) if changed else None


@hookimpl
def turn_inbound(message: Message) -> Message | None:
    """Redact the inbound message before it reaches the prompt."""
    return redact_message(message)


@hookimpl
def turn_outbound(message: Message) -> Message | None:
    """Redact the reply before it is stored and delivered."""
    return redact_message(message)


__all__ = [
    "CARD_PLACEHOLDER",
    "EMAIL_PLACEHOLDER",
    "PHONE_PLACEHOLDER",
    "__version__",
    "luhn_valid",
    "redact_cards",
    "redact_emails",
    "redact_message",
    "redact_phones",
    "redact_text",
    "turn_inbound",
    "turn_outbound",
]
