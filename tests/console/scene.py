"""A real agent that has lived a little, for the console's tests: forks, a merge, a denial,
a failing effect, a tool step and a compression, on a SQLite file.

``Scenario`` is a plain plugin acting on the words of each message (through its
``ctx``, so every action is audited under its name); ``Calculator`` a service
with one tool, which the scripted echo model calls in the first turn. ``play``
sends the messages that make each of those happen, in order, and returns the
sessions' ids::

    async with serving_http(tmp_path, **scene_options()) as served:
        ids = await play(served.agent)
"""

from __future__ import annotations

from typing import Any

from turnkit.agent import Agent
from turnkit_hookspecs import (
    Deny,
    ForkOptions,
    Message,
    SessionExtensionContext,
    ToolCallBlock,
    TurnInfo,
    action,
    hookimpl,
)
from turnkit_hookspecs import Service as ServiceBase

#: What the first turn's model does: call the tool, then answer with its result.
SCRIPT = [{"tool": "calc.add", "args": {"a": 2, "b": 3}}, {"text": "the sum is 5"}]


class Calculator(ServiceBase):
    """One tool for the model."""

    name = "calc"

    @action(tool=True)
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b


class Scenario:
    """Forks on "fork", merges its child on "merge", compresses on "compress", refuses
    "forbidden", and fails its ``turn_completed`` effect on "boom"."""

    @hookimpl
    def turn_authorize(self, message: Message) -> Deny | None:
        return Deny("forbidden words") if "forbidden" in message.text else None

    @hookimpl
    async def turn_inbound(self, ctx: SessionExtensionContext, turn: TurnInfo, message: Message) -> None:
        text = message.text
        if text.startswith("fork"):
            await ctx.contribute_context("hint", "the user likes forks")
            await ctx.fork(
                ForkOptions(reason="explore an idea", initial_message=Message.of("user", "what if?"))
            )
        elif text.startswith("merge"):
            children = [c for c in await ctx.get_child_sessions() if c.status == "active"]
            if children:
                await ctx.merge(children[0].session_id, summary="the idea works")
        elif text.startswith("compress"):
            await ctx.request_compression("the user asked")

    @hookimpl
    def tool_authorize(self, call: ToolCallBlock) -> None:
        """Allows every call: here so that the tool step has a hook call of its own."""

    @hookimpl
    def turn_completed(self, message: Message) -> None:
        if "boom" in message.text:
            raise RuntimeError("the notifier is down")


def scene_options() -> dict[str, Any]:
    """Keywords for ``serving_http`` / ``running_agent``: the plugin, the service, the script."""
    return {
        "plugins": {"scenario": Scenario()},
        "services": [Calculator()],
        "model": {"script": SCRIPT},
        "turns": {"keep_recent": 2},
    }


async def play(agent: Agent) -> dict[str, str]:
    """Run the scene's turns; the ids of the main session (``main``) and its fork (``child``)."""
    first = await agent.send("add 2 and 3 with the tool")
    main = first.turn.session_id
    await agent.send("fork this conversation", main)
    await agent.send("forbidden question", main)
    await agent.send("boom goes the effect", main)
    await agent.send("merge the child back", main)
    await agent.send("compress the history", main)
    await agent.send("after compression", main)
    await agent.dispatcher.drain()
    await agent.orchestrator.flush_traces()
    [child] = [r.session_id for r in await agent.store.list_sessions() if r.info.parent_session_id == main]
    return {"main": main, "child": child}
