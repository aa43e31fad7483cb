"""The runtime's own calls of the contract's points, typed.

The orchestrator, the extension context and the reply stream fire the turn
and session points through :class:`Points` instead of spelling point names
as strings: a misspelt point or a missing argument is then a type error, and
each call states what it returns (``Deny | None``, ``Message``…). Services'
own points keep the string form (``context.plugins.guard("shell_authorize",
…)``), as they are declared at run time.

Each method returns the dispatcher's coroutine itself, adding no frame.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from turnkit_hookspecs import (
    Deny,
    ForkOptions,
    Message,
    Prompt,
    ReplyStream,
    SessionInfo,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    TurnInfo,
)

from .dispatch import Dispatcher

#: An effect's dispatch: it queues the implementations and returns at once.
Effect = Coroutine[Any, Any, None]


class Points:
    """Typed calls of every point the contract declares (docs/points/).

    ``ctx`` is what the implementations taking ``ctx`` get: a
    :class:`~turnkit.plan.ContextSource` hands each plugin its own view.
    """

    __slots__ = ("dispatch",)

    def __init__(self, dispatch: Dispatcher) -> None:
        self.dispatch = dispatch

    # ------------------------------------------------------------------ a turn

    def turn_authorize(
        self, ctx: object, turn: TurnInfo, message: Message
    ) -> Coroutine[Any, Any, Deny | None]:
        return self.dispatch.guard("turn_authorize", ctx=ctx, turn=turn, message=message)

    def turn_inbound(self, ctx: object, turn: TurnInfo, message: Message) -> Coroutine[Any, Any, Message]:
        return self.dispatch.pipeline("turn_inbound", ctx=ctx, turn=turn, message=message)

    def turn_instructions(self, ctx: object, turn: TurnInfo, instructions: str) -> Coroutine[Any, Any, str]:
        return self.dispatch.pipeline("turn_instructions", ctx=ctx, turn=turn, instructions=instructions)

    def turn_tools(
        self, ctx: object, turn: TurnInfo, tools: tuple[ToolSpec, ...]
    ) -> Coroutine[Any, Any, tuple[ToolSpec, ...]]:
        return self.dispatch.pipeline("turn_tools", ctx=ctx, turn=turn, tools=tools)

    def turn_prompt(self, ctx: object, turn: TurnInfo, prompt: Prompt) -> Coroutine[Any, Any, Prompt]:
        return self.dispatch.pipeline("turn_prompt", ctx=ctx, turn=turn, prompt=prompt)

    def turn_reply(
        self, ctx: object, turn: TurnInfo, prompt: Prompt, stream: ReplyStream
    ) -> Coroutine[Any, Any, Message]:
        return self.dispatch.resolve("turn_reply", ctx=ctx, turn=turn, prompt=prompt, stream=stream)

    def model_names(self) -> Coroutine[Any, Any, list[str]]:
        return self.dispatch.resolve("model_names")

    def turn_chunk(self, ctx: object, turn: TurnInfo, text: str) -> Coroutine[Any, Any, str]:
        return self.dispatch.pipeline("turn_chunk", ctx=ctx, turn=turn, text=text)

    def tool_authorize(
        self, ctx: object, turn: TurnInfo, call: ToolCallBlock
    ) -> Coroutine[Any, Any, Deny | None]:
        return self.dispatch.guard("tool_authorize", ctx=ctx, turn=turn, call=call)

    def tool_call(
        self, plugin: str, ctx: object, turn: TurnInfo, call: ToolCallBlock
    ) -> Coroutine[Any, Any, ToolOutputBlock]:
        """``plugin``'s ``tool_call`` alone: the plugin that offered the tool runs it."""
        return self.dispatch.resolve_by(plugin, "tool_call", ctx=ctx, turn=turn, call=call)

    def turn_outbound(self, ctx: object, turn: TurnInfo, message: Message) -> Coroutine[Any, Any, Message]:
        return self.dispatch.pipeline("turn_outbound", ctx=ctx, turn=turn, message=message)

    def turn_completed(self, ctx: object, turn: TurnInfo, message: Message, reply: Message) -> Effect:
        return self.dispatch.effect("turn_completed", ctx=ctx, turn=turn, message=message, reply=reply)

    def turn_denied(self, ctx: object, turn: TurnInfo, message: Message, deny: Deny) -> Effect:
        return self.dispatch.effect("turn_denied", ctx=ctx, turn=turn, message=message, deny=deny)

    def turn_failed(self, ctx: object, turn: TurnInfo, message: Message, error: str) -> Effect:
        return self.dispatch.effect("turn_failed", ctx=ctx, turn=turn, message=message, error=error)

    # ------------------------------------------------------------------ a session

    def session_fork(self, ctx: object, options: ForkOptions) -> Coroutine[Any, Any, Deny | None]:
        return self.dispatch.guard("session_fork", ctx=ctx, options=options)

    def session_forked(self, ctx: object, child: SessionInfo, options: ForkOptions) -> Effect:
        return self.dispatch.effect("session_forked", ctx=ctx, child=child, options=options)

    def session_merged(self, ctx: object, child: SessionInfo, summary: Message) -> Effect:
        return self.dispatch.effect("session_merged", ctx=ctx, child=child, summary=summary)

    def session_abandoned(self, ctx: object, child: SessionInfo) -> Effect:
        return self.dispatch.effect("session_abandoned", ctx=ctx, child=child)

    def session_compress(
        self, ctx: object, messages: Sequence[Message], reason: str
    ) -> Coroutine[Any, Any, str]:
        return self.dispatch.resolve("session_compress", ctx=ctx, messages=messages, reason=reason)

    def session_compressed(self, ctx: object, summary: Message, compressed: int, reason: str) -> Effect:
        return self.dispatch.effect(
            "session_compressed", ctx=ctx, summary=summary, compressed=compressed, reason=reason
        )

    def session_token_count(self, ctx: object, messages: Sequence[Message]) -> Coroutine[Any, Any, int]:
        return self.dispatch.resolve("session_token_count", ctx=ctx, messages=messages)

    def session_context_contributed(self, ctx: object, key: str, value: str) -> Effect:
        return self.dispatch.effect("session_context_contributed", ctx=ctx, key=key, value=value)

    def agent_message(self, ctx: object, agent_id: str, message: Message) -> Coroutine[Any, Any, Deny | None]:
        return self.dispatch.guard("agent_message", ctx=ctx, agent_id=agent_id, message=message)
