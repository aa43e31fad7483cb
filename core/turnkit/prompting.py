"""Prompt assembly: what the model sees at the start of a turn.

A prompt is the turn's instructions (if it has any: see
:mod:`turnkit.instructions`), the newest summary (if the session was
compressed), the history window (the newest ``[turns] history``
uncompressed messages, with the turn's inbound message as rewritten by
``turn_inbound``), the context extensions contributed since the last turn,
and the tools on offer. Its cost follows the window, never the whole
history: the store returns only the window.
"""

from __future__ import annotations

from collections.abc import Sequence

from turnkit_hookspecs import Message, Prompt, ToolSpec

from .instructions import prompt_message
from .store import ContextItem, StoredMessage

#: Metadata key of a summary message: the id of the newest message it covers.
COVERS = "covers_upto"


def assemble(
    window: Sequence[StoredMessage],
    inbound_id: int | None,
    inbound: Message,
    contributed: Sequence[ContextItem],
    tools: Sequence[ToolSpec],
    instructions: str | None = None,
) -> Prompt:
    """Build the prompt of a turn whose stored inbound message has ``inbound_id``.

    ``instructions`` (the text the turn uses, ``None`` for none) come first.
    """
    messages = visible(window)
    history = [prompt_message(instructions)] if instructions is not None else []
    history += [m.message for m in messages if m.id != inbound_id]
    if contributed:
        history.append(context_message(contributed))
    history.append(inbound)
    return Prompt(history, tools)


def visible(window: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The window without what a summary in it already covers.

    A forked session's summary may cover ancestors' messages the store still
    holds uncompressed (they belong to the parent), so they are left out here.
    """
    summaries = [m for m in window if m.summary]
    if not summaries:
        return list(window)
    covered = int(summaries[-1].message.metadata.get(COVERS, 0))
    return [m for m in window if m.summary or m.id > covered]


def context_message(items: Sequence[ContextItem]) -> Message:
    """Contributed context as one system message, one ``key: value`` line per item."""
    lines = "\n".join(f"{item.key}: {item.value}" for item in items)
    return Message.of(
        "system", f"Context for this turn:\n{lines}", metadata={"context": [i.key for i in items]}
    )
