"""The runtime's built-in answers to resolve points, registered last (``trylast``).

They make an agent run with no plugin at all, offline:

* ``turn_reply`` — the echo/scripted model: it answers with the configured
  ``[model] script`` steps in order (a text or a tool call each), then
  echoes the last message it was asked about, streaming its text word by
  word when someone listens;
* ``model_names`` — ``["echo"]`` while the echo model is the only answer to
  ``turn_reply``; beside a model plugin that does not name its models
  itself, ``[model] name`` if set (nothing can check it), else that
  plugin's name, so that an agent never claims to be the echo model while
  something else answers;
* ``session_compress`` — an extractive summary: the first sentence of each
  message, role-labelled, up to a length budget;
* ``session_token_count`` — about four characters per token, plus a small
  per-message overhead (the usual rule of thumb for English text).

Any plugin answering these points comes first; these only answer when
nobody else did.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from turnkit_hookspecs import (
    Message,
    Prompt,
    ReplyStream,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    hookimpl,
)

from .config import ModelConfig, ScriptStep
from .discovery import BUILTIN_GROUP

if TYPE_CHECKING:
    from .manager import PluginManager

#: Registered under this name; ``turnkit hooks`` shows it.
DEFAULTS_NAME = "turnkit-defaults"
#: The name the built-in echo model serves (``model_names``), and its replies' author.
ECHO_MODEL = "echo"

_SENTENCE = re.compile(r"(.+?[.!?])(\s|$)", re.S)
#: The echo model's stream chunks: each word with the whitespace after it.
_WORDS = re.compile(r"\s*\S+\s*")
#: Tokens charged per message for role and framing, on top of its text.
MESSAGE_OVERHEAD = 4
#: Tokens charged for a block that is not text (an image, a document …).
BLOCK_COST = 64


def install_defaults(manager: PluginManager, model: ModelConfig) -> None:
    """Register the built-in answers with ``manager`` unless they already are."""
    if DEFAULTS_NAME not in manager.records:
        manager.register(Defaults(model, lambda: other_models(manager)), DEFAULTS_NAME, group=BUILTIN_GROUP)


def other_models(manager: PluginManager) -> list[str]:
    """The plugins answering ``turn_reply`` before the echo model, in call order.

    Asked when it matters (at start, for ``/v1/models``), since plugins that
    are not configured leave the manager after the defaults are installed.
    """
    return [
        impl.plugin
        for impl in manager.implementations("turn_reply")
        if not impl.wrapper and impl.plugin != DEFAULTS_NAME
    ]


class Defaults:
    """The built-in model, summarizer and token counter of one agent.

    ``other_models`` names the plugins answering ``turn_reply`` besides this
    one (none: the echo model is the agent's model).
    """

    def __init__(
        self, model: ModelConfig, other_models: Callable[[], list[str]], summary_chars: int = 2000
    ) -> None:
        self._model = model
        self._script: Iterator[ScriptStep] = iter(model.script)
        self._other_models = other_models
        self._summary_chars = summary_chars

    @hookimpl(trylast=True)
    async def turn_reply(self, prompt: Prompt, stream: ReplyStream) -> Message:
        """The next scripted step, or an echo of the last message; streamed word by word."""
        step = next(self._script, None)
        if step is not None and step.tool is not None:
            call = ToolCallBlock(f"call-{uuid.uuid4().hex[:12]}", step.tool, dict(step.args))
            return Message("assistant", (call,), author=ECHO_MODEL)
        text = (step.text or "") if step is not None else echo(prompt.messages)
        if stream.active:
            for word in _WORDS.findall(text):
                await stream.write(word)
        return Message.of("assistant", text, author=ECHO_MODEL)

    @hookimpl(trylast=True)
    def model_names(self) -> list[str]:
        """``["echo"]`` when the echo model answers; else the best the runtime can say (module docstring)."""
        others = self._other_models()
        if not others:
            return [ECHO_MODEL]
        return [self._model.name] if self._model.name is not None else others[:1]

    @hookimpl(trylast=True)
    def session_compress(self, messages: Sequence[Message]) -> str:
        """An extractive summary of ``messages``."""
        lines = [f"{m.role}: {first_sentence(m.text)}" for m in messages if m.text.strip()]
        return "Summary of earlier conversation:\n" + "\n".join(_budget(lines, self._summary_chars))

    @hookimpl(trylast=True)
    def session_token_count(self, messages: Sequence[Message]) -> int:
        """About four characters per token."""
        return sum(count_tokens(message) for message in messages)


def echo(messages: Sequence[Message]) -> str:
    """What the echo model says: the last message's text, or the tool outputs it was given."""
    if not messages:
        return ""
    last = messages[-1]
    outputs = [b for b in last.blocks if isinstance(b, ToolOutputBlock)]
    if outputs:
        return "\n".join(("error: " if b.is_error else "") + b.output for b in outputs)
    return last.text


def count_tokens(message: Message) -> int:
    """The heuristic token count of one message."""
    tokens = MESSAGE_OVERHEAD
    for block in message.blocks:
        if isinstance(block, TextBlock):
            tokens += (len(block.text) + 3) // 4
        elif isinstance(block, ToolOutputBlock):
            tokens += (len(block.output) + 3) // 4
        else:
            tokens += BLOCK_COST
    return tokens


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of ``text`` on one line, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    match = _SENTENCE.match(flat)
    sentence = match.group(1) if match else flat
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def _budget(lines: list[str], chars: int) -> list[str]:
    """``lines`` within ``chars``: if too long, the oldest and newest half-budgets with a gap marker."""
    if sum(len(line) + 1 for line in lines) <= chars:
        return lines
    head = _within(lines, chars // 2)
    tail = _within(lines[::-1], chars // 2)[::-1]
    skipped = len(lines) - len(head) - len(tail)
    return [*head, f"… ({skipped} more messages)", *tail]


def _within(lines: list[str], chars: int) -> list[str]:
    kept, used = [], 0
    for line in lines:
        used += len(line) + 1
        if used > chars:
            break
        kept.append(line)
    return kept
