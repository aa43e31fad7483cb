"""Extension points fired by the actions of the SessionExtensionContext.

Each action is audited with the acting extension's id; these points let
other plugins refuse, answer or observe it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import SessionExtensionContext
from .kinds import effect, guard, resolve
from .model import Deny, ForkOptions, Message, SessionInfo


@guard
def session_fork(ctx: SessionExtensionContext, options: ForkOptions) -> Deny | None:
    """Decide whether the session may fork a child.

    Example::

        @hookimpl
        async def session_fork(ctx):
            if len(await ctx.get_child_sessions()) >= 3:
                return Deny("at most three open children")
    """


@effect
def session_forked(ctx: SessionExtensionContext, child: SessionInfo, options: ForkOptions) -> None:
    """Observe a new child session.

    Example::

        @hookimpl
        def session_forked(child, options):
            print(f"forked {child.session_id}: {options.reason}")
    """


@effect
def session_merged(ctx: SessionExtensionContext, child: SessionInfo, summary: Message) -> None:
    """Observe a child merged back; ``summary`` is the message added to the parent.

    Example::

        @hookimpl
        def session_merged(child, summary):
            print(f"{child.session_id} merged: {summary.text}")
    """


@effect
def session_abandoned(ctx: SessionExtensionContext, child: SessionInfo) -> None:
    """Observe a child closed without merging.

    Example::

        @hookimpl
        def session_abandoned(child):
            print(f"gave up on {child.session_id}")
    """


@resolve
def session_compress(ctx: SessionExtensionContext, messages: Sequence[Message], reason: str) -> str | None:
    """Summarise ``messages`` (for compression, or a child's merge summary).

    ``reason`` is ``"merge"`` when the summary is a child session's merge
    summary (``messages`` are then the child's own messages); otherwise it
    is the reason given to ``request_compression``. The runtime's extractive
    summariser answers last.

    Example::

        @hookimpl
        async def session_compress(messages):
            return await my_model.summarise([m.text for m in messages])
    """


@effect
def session_compressed(ctx: SessionExtensionContext, summary: Message, compressed: int, reason: str) -> None:
    """Observe a compression: ``compressed`` older messages now stand behind ``summary``.

    Example::

        @hookimpl
        def session_compressed(compressed, reason):
            print(f"compressed {compressed} messages ({reason})")
    """


@resolve
def session_token_count(ctx: SessionExtensionContext, messages: Sequence[Message]) -> int | None:
    """Count the tokens ``messages`` take in the model's context window.

    The runtime's heuristic (about four characters a token) answers last.

    Example::

        @hookimpl
        def session_token_count(messages):
            return sum(len(encoding.encode(m.text)) for m in messages)
    """


@effect
def session_context_contributed(ctx: SessionExtensionContext, key: str, value: str) -> None:
    """Observe context contributed for the next turn's prompt.

    Example::

        @hookimpl
        def session_context_contributed(ctx, key):
            print(f"{ctx.extension_id} contributed {key!r}")
    """


@guard
def agent_message(ctx: SessionExtensionContext, agent_id: str, message: Message) -> Deny | None:
    """Decide whether a message may be sent to another agent's inbox.

    Example::

        @hookimpl
        def agent_message(agent_id):
            if agent_id not in {"researcher", "writer"}:
                return Deny(f"{agent_id} is not a known peer")
    """
