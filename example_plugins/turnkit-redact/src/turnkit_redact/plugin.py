"""The plugin: redaction of messages, prompts and memories at turnkit's pipeline points.

Every function returns a new value when something was redacted and ``None``
(a pipeline's "unchanged") when nothing was, so the other plugins of a
pipeline see exactly what changed, and nothing is copied for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs
from attrs import AttrsInstance
from turnkit_hookspecs import (
    Block,
    Message,
    Plugin,
    Prompt,
    ReasoningBlock,
    TextBlock,
    ToolOutputBlock,
    hookimpl,
)

from .settings import DEFAULT_SETTINGS, RedactSettings


class TextRecord(AttrsInstance, Protocol):
    """A frozen attrs value with a ``text``: what the memory service's ``memory_store`` threads.

    The plugin depends on the contract only, not on the memory service, so
    it takes any such value and changes nothing but its ``text``.
    """

    @property
    def text(self) -> str: ...


R = TypeVar("R", bound=TextRecord)


def redact_block(block: Block, settings: RedactSettings = DEFAULT_SETTINGS) -> Block:
    """``block`` with its text redacted: text, reasoning and tool output blocks; others as they are."""
    if isinstance(block, TextBlock | ReasoningBlock):
        text = settings.redact(block.text)
        return block if text == block.text else attrs.evolve(block, text=text)
    if isinstance(block, ToolOutputBlock):
        output = settings.redact(block.output)
        return block if output == block.output else attrs.evolve(block, output=output)
    return block


def redact_message(message: Message, settings: RedactSettings = DEFAULT_SETTINGS) -> Message | None:
    """Return ``message`` with its blocks redacted, or ``None`` if nothing changed.

    Tool calls keep their arguments: they are the model's own words, written
    from a prompt that was redacted.
    """
    blocks = tuple(redact_block(block, settings) for block in message.blocks)
    if all(new is old for new, old in zip(blocks, message.blocks, strict=True)):
        return None
    return attrs.evolve(message, blocks=blocks)


def redact_prompt(prompt: Prompt, settings: RedactSettings = DEFAULT_SETTINGS) -> Prompt | None:
    """Return ``prompt`` with every message redacted, or ``None`` if nothing changed."""
    redacted = [redact_message(message, settings) for message in prompt.messages]
    if all(message is None for message in redacted):
        return None
    messages = tuple(new or old for new, old in zip(redacted, prompt.messages, strict=True))
    return attrs.evolve(prompt, messages=messages)


def redact_memory(memory: R, settings: RedactSettings = DEFAULT_SETTINGS) -> R | None:
    """Return ``memory`` with its text redacted, or ``None`` if nothing changed."""
    text = settings.redact(memory.text)
    if text == memory.text:
        return None
    # Through a typed name: mypy's attrs plugin checks attrs.evolve calls for a class it can name,
    # and the memory's class belongs to a service this plugin does not import.
    evolve: Callable[..., R] = attrs.evolve
    return evolve(memory, text=text)


class RedactPlugin(Plugin):
    """turnkit-redact as the runtime loads it: one instance per agent, set by ``[plugin.redact]``.

    ``settings`` is :class:`RedactSettings` with everything switched on until
    the agent sets it, so an instance nobody configured (registered by hand
    on a bare plugin manager) still redacts everything.
    """

    settings_class = RedactSettings
    settings: RedactSettings = DEFAULT_SETTINGS

    @hookimpl
    def turn_inbound(self, message: Message) -> Message | None:
        """Redact the inbound message before later plugins and the prompt see it."""
        return redact_message(message, self.settings)

    @hookimpl(trylast=True)
    def turn_prompt(self, prompt: Prompt) -> Prompt | None:
        """Redact the whole prompt (history, contributed context, tool outputs) last, as the model gets it.

        The history holds the messages as they were stored, and the inbound
        message is stored as received: without this, the model would read
        in the next turn what ``turn_inbound`` hid from it in this one.
        """
        return redact_prompt(prompt, self.settings)

    @hookimpl
    def turn_outbound(self, message: Message) -> Message | None:
        """Redact the reply before it is stored and delivered."""
        return redact_message(message, self.settings)

    @hookimpl(optionalhook=True, trylast=True)
    def memory_store(self, memory: R) -> R | None:
        """Redact a memory last before the memory service embeds and writes it."""
        return redact_memory(memory, self.settings)


@hookimpl
def turn_inbound(message: Message) -> Message | None:
    """Redact the inbound message with the default settings (for code registering the module itself)."""
    return redact_message(message)


@hookimpl
def turn_outbound(message: Message) -> Message | None:
    """Redact the reply with the default settings (for code registering the module itself)."""
    return redact_message(message)
