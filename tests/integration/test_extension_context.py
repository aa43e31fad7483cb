"""Every SessionExtensionContext member, called by a real plugin inside a real agent.

Each plugin here receives ``ctx`` in a hook of a running agent on a SQLite
file and acts through it; the effect is read back from the store, the audit
trail must name the acting plugin, and the action's effect point must fire.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import SessionError, UnknownAgentError
from turnkit.store import inbox_session_id
from turnkit_hookspecs import (
    ContextWindowState,
    Deny,
    ForkOptions,
    Message,
    SessionExtensionContext,
    TurnInfo,
    hookimpl,
)

from tests.support.agents import Actor, EffectRecorder, PromptSpy, act, build_agent, eventually, running_agent

CONTEXT_HEADER = "Context for this turn:"


async def audited(agent: Any, session_id: str) -> list[tuple[str, str]]:
    """``(extension_id, action)`` of the session's audit trail."""
    return [(e.extension_id, e.action) for e in await agent.store.audit_events(session_id)]


def has_context(prompt: list[tuple[str, str]]) -> bool:
    return any(role == "system" and text.startswith(CONTEXT_HEADER) for role, text in prompt)


class Contributor:
    """Contributes context from a guard of turn ``when`` (before that turn's prompt is assembled)."""

    def __init__(self, when: int) -> None:
        self.when = when

    @hookimpl
    async def turn_authorize(self, ctx: SessionExtensionContext, turn: TurnInfo) -> None:
        if turn.number == self.when:
            await ctx.contribute_context("note", f"written during turn {turn.number}")


class Summarizer:
    """Answers ``session_compress`` and remembers what it was asked to summarise."""

    def __init__(self) -> None:
        self.asked: list[tuple[list[str], str]] = []

    @hookimpl
    def session_compress(self, messages: list[Message], reason: str) -> str:
        self.asked.append(([m.text for m in messages], reason))
        return f"{len(messages)} messages summarised ({reason})"


# ---------------------------------------------------------------------- the context's identity


async def test_ctx_names_the_plugin_the_session_the_turn_and_the_parent(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}) as agent:
        parent = (await agent.sessions.open()).session_id

        async def identity(ctx: SessionExtensionContext) -> tuple[Any, ...]:
            assert isinstance(ctx, SessionExtensionContext)
            return ctx.extension_id, ctx.session_id, ctx.turn_id, ctx.parent_session_id

        name, session_id, turn_id, parent_id = await act(agent, actor, parent, identity)
        turns = await agent.store.turns(parent)
        assert (name, session_id, turn_id, parent_id) == ("actor", parent, turns[-1].turn_id, None)

        child = await act(agent, actor, parent, lambda ctx: ctx.fork())
        _, session_id, turn_id, parent_id = await act(agent, actor, child, identity)
        child_turns = await agent.store.turns(child)
        assert (session_id, turn_id, parent_id) == (child, child_turns[-1].turn_id, parent)


# ---------------------------------------------------------------------- contribute_context


async def test_contributed_context_lands_in_the_next_prompt_only(tmp_path: Path) -> None:
    spy, recorder = PromptSpy(), EffectRecorder()
    plugins = {"contributor": Contributor(when=1), "recorder": recorder, "spy": spy}
    async with running_agent(tmp_path, plugins=plugins) as agent:
        sid = (await agent.sessions.open()).session_id
        first = await agent.send("one", sid)
        second = await agent.send("two", sid)
        third = await agent.send("three", sid)
        await agent.dispatcher.drain()

        assert not has_context(spy.of(first.turn)), "made during turn 1: not in turn 1's prompt"
        assert spy.of(second.turn)[-2:] == [
            ("system", f"{CONTEXT_HEADER}\nnote: written during turn 1"),
            ("user", "two"),
        ]
        assert not has_context(spy.of(third.turn)), "consumed by turn 2"
        assert await agent.store.pending_context(sid) == []

        [event] = [e for e in await agent.store.audit_events(sid) if e.action == "contribute_context"]
        assert (event.extension_id, event.turn_id, event.detail["key"]) == (
            "contributor",
            first.turn.turn_id,
            "note",
        )
        [effect] = recorder.named("session_context_contributed")
        assert (effect["key"], effect["value"]) == ("note", "written during turn 1")
        assert effect["ctx"].extension_id == "recorder" and effect["ctx"].session_id == sid


async def test_context_contributed_after_a_turn_goes_to_the_following_one(tmp_path: Path) -> None:
    actor, spy = Actor(), PromptSpy()
    async with running_agent(tmp_path, plugins={"actor": actor, "spy": spy}) as agent:
        sid = (await agent.sessions.open()).session_id
        await act(agent, actor, sid, lambda ctx: ctx.contribute_context("mood", "calm"))
        await act(agent, actor, sid, lambda ctx: ctx.contribute_context("weather", "rain"))
        third = await agent.send("three", sid)
        fourth = await agent.send("four", sid)
        turns = await agent.store.turns(sid)
        assert spy.of(turns[1].info)[-2] == ("system", f"{CONTEXT_HEADER}\nmood: calm")
        assert spy.of(third.turn)[-2] == ("system", f"{CONTEXT_HEADER}\nweather: rain")
        assert not has_context(spy.of(fourth.turn))

        with pytest.raises(TypeError, match="value must be a str"):
            await act(agent, actor, sid, lambda ctx: ctx.contribute_context("n", 3))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- fork


async def test_fork_sees_the_parent_history_up_to_the_fork_point(tmp_path: Path) -> None:
    actor, recorder, spy = Actor(), EffectRecorder(), PromptSpy()
    async with running_agent(tmp_path, plugins={"actor": actor, "recorder": recorder, "spy": spy}) as agent:
        parent = (await agent.sessions.open()).session_id
        await agent.send("one", parent)
        options = ForkOptions(reason="explore", metadata={"topic": "tides"})
        child = await act(agent, actor, parent, lambda ctx: ctx.fork(options), text="two")
        await agent.send("three (after the fork)", parent)

        seen = [(m.message.role, m.message.text) for m in await agent.store.messages(child, lineage=True)]
        assert seen == [("user", "one"), ("assistant", "one"), ("user", "two"), ("assistant", "two")]
        assert await agent.store.messages(child) == [], "the child owns no message yet"
        window = await agent.store.window(child, 50)
        assert [m.message.text for m in window] == ["one", "one", "two", "two"]

        info = await agent.sessions.get(child)
        assert info is not None
        assert (info.parent_session_id, info.root_session_id, info.status) == (parent, parent, "active")
        assert info.metadata == {"topic": "tides", "fork_reason": "explore", "forked_by": "actor"}
        assert info.fork_point == window[-1].id

        reply = await agent.send("in the child", child)
        assert spy.of(reply.turn) == [*seen, ("user", "in the child")]
        parent_history = [m.text for m in await agent.sessions.history(parent)]
        assert "in the child" not in parent_history

        await agent.dispatcher.drain()
        [forked] = recorder.named("session_forked")
        assert forked["child"].session_id == child and forked["options"] == options
        assert forked["ctx"].session_id == parent
        [event] = [e for e in await agent.store.audit_events(parent) if e.action == "fork"]
        assert event.extension_id == "actor"
        assert event.detail == {"child": child, "reason": "explore", "fork_point": info.fork_point}


async def test_fork_with_an_initial_message_runs_a_turn_in_the_child(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}) as agent:
        parent = (await agent.sessions.open()).session_id
        opening = Message.of("user", "look into the tides")
        child = await act(agent, actor, parent, lambda ctx: ctx.fork(ForkOptions(initial_message=opening)))

        async def child_done() -> bool:
            turns = await agent.store.turns(child)
            return bool(turns) and turns[0].status == "completed"

        await eventually(child_done)
        [turn] = await agent.store.turns(child)
        assert (turn.number, turn.initiator, turn.initiator_id) == (1, "extension", "actor")
        own = [(m.message.role, m.message.text) for m in await agent.store.messages(child)]
        assert own == [("user", "look into the tides"), ("assistant", "look into the tides")]


@pytest.mark.parametrize("inherit", [True, False])
async def test_fork_inherits_pending_context_only_when_asked(tmp_path: Path, inherit: bool) -> None:
    actor, spy = Actor(), PromptSpy()
    async with running_agent(tmp_path, plugins={"actor": actor, "spy": spy}) as agent:
        parent = (await agent.sessions.open()).session_id

        async def contribute_then_fork(ctx: SessionExtensionContext) -> str:
            await ctx.contribute_context("plan", "check the moon")
            return await ctx.fork(ForkOptions(inherit_context=inherit))

        child = await act(agent, actor, parent, contribute_then_fork)
        pending = [(c.key, c.value, c.extension_id) for c in await agent.store.pending_context(child)]
        assert pending == ([("plan", "check the moon", "actor")] if inherit else [])
        in_child = await agent.send("hello", child)
        assert has_context(spy.of(in_child.turn)) is inherit
        in_parent = await agent.send("hello", parent)
        assert spy.of(in_parent.turn)[-2] == ("system", f"{CONTEXT_HEADER}\nplan: check the moon")


class ForkGate:
    """Denies (or fails) every fork."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    @hookimpl
    def session_fork(self, options: ForkOptions) -> Deny:
        if self.fail:
            raise RuntimeError("gate broke")
        return Deny(f"no forks ({options.reason})")


@pytest.mark.parametrize(
    ("fail", "reason"),
    [(False, r"denied by gate: no forks \(risky\)"), (True, r"denied by gate: gate failed: RuntimeError")],
)
async def test_a_fork_denied_by_the_session_fork_guard_raises_and_forks_nothing(
    tmp_path: Path, fail: bool, reason: str
) -> None:
    actor, recorder = Actor(), EffectRecorder()
    plugins = {"actor": actor, "gate": ForkGate(fail), "recorder": recorder}
    async with running_agent(tmp_path, plugins=plugins) as agent:
        parent = (await agent.sessions.open()).session_id
        with pytest.raises(SessionError, match=reason):
            await act(agent, actor, parent, lambda ctx: ctx.fork(ForkOptions(reason="risky")))
        assert await agent.store.child_sessions(parent) == []
        assert [s.session_id for s in await agent.sessions.list_sessions()] == [parent]
        assert recorder.named("session_forked") == []
        [event] = [e for e in await agent.store.audit_events(parent) if e.action == "fork_denied"]
        assert (event.extension_id, event.detail["denied_by"]) == ("actor", "gate")


# ---------------------------------------------------------------------- merge, abandon, children


async def test_merge_with_a_given_summary(tmp_path: Path) -> None:
    actor, recorder = Actor(), EffectRecorder()
    async with running_agent(tmp_path, plugins={"actor": actor, "recorder": recorder}) as agent:
        parent = (await agent.sessions.open()).session_id
        child = await act(agent, actor, parent, lambda ctx: ctx.fork(ForkOptions(reason="side quest")))
        await agent.send("work in the child", child)

        merged = await act(
            agent, actor, parent, lambda ctx: ctx.merge(child, summary="the tide turns at six")
        )
        assert isinstance(merged, Message) and merged.role == "system"
        assert merged.text == f"Result of child session {child}: the tide turns at six"
        last = (await agent.store.messages(parent))[-1]
        assert (last.message.text, last.message.metadata) == (merged.text, {"merged_from": child})
        info = await agent.sessions.get(child)
        assert info is not None and info.status == "merged"
        with pytest.raises(SessionError, match="merged"):
            await agent.send("more", child)

        await agent.dispatcher.drain()
        [effect] = recorder.named("session_merged")
        assert effect["child"].session_id == child and effect["child"].status == "merged"
        assert effect["summary"] == merged
        assert effect["ctx"].session_id == parent
        [event] = [e for e in await agent.store.audit_events(parent) if e.action == "merge"]
        assert (event.extension_id, event.detail["child"]) == ("actor", child)

        # the next prompt of the parent carries the child's result
        spy = PromptSpy()
        agent.manager.register(spy, "spy")
        after = await agent.send("what did you find?", parent)
        assert ("system", merged.text) in spy.of(after.turn)


async def test_merge_without_summary_resolves_one_through_session_compress(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}) as agent:
        parent = (await agent.sessions.open()).session_id
        opening = Message.of("user", "Find the tide table. Then stop.")
        options = ForkOptions(initial_message=opening)

        # fork and merge in one go: the merge waits for the child's first turn
        async def fork_and_merge(ctx: SessionExtensionContext) -> Message:
            return await ctx.merge(await ctx.fork(options))

        merged = await act(agent, actor, parent, fork_and_merge)
        child = (await agent.store.child_sessions(parent))[0].session_id
        expected = (
            "Summary of earlier conversation:\nuser: Find the tide table.\nassistant: Find the tide table."
        )
        assert merged.text == f"Result of child session {child}: {expected}"


async def test_merge_uses_a_plugin_answering_session_compress(tmp_path: Path) -> None:
    actor, summarizer = Actor(), Summarizer()
    async with running_agent(tmp_path, plugins={"actor": actor, "summarizer": summarizer}) as agent:
        parent = (await agent.sessions.open()).session_id
        await agent.send("before the fork", parent)
        child = await act(agent, actor, parent, lambda ctx: ctx.fork())
        await agent.send("in the child", child)
        merged = await act(agent, actor, parent, lambda ctx: ctx.merge(child))
        assert merged.text == f"Result of child session {child}: 2 messages summarised (merge)"
        assert summarizer.asked == [(["in the child", "in the child"], "merge")]


class FlagReader:
    """Answers ``session_compress``, noting each message's ``compressed`` and ``summary`` flags."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, bool, bool]]] = []

    @hookimpl
    def session_compress(self, messages: list[Message], reason: str) -> str:
        flags = [(m.text, "compressed" in m.metadata, "summary" in m.metadata) for m in messages]
        self.seen.append(flags)
        return f"{reason} of {len(messages)}"


async def test_session_compress_sees_which_messages_are_compressed_and_which_summarise(
    tmp_path: Path,
) -> None:
    actor, reader = Actor(), FlagReader()
    plugins = {"actor": actor, "reader": reader}
    async with running_agent(tmp_path, plugins=plugins, turns={"keep_recent": 1}) as agent:
        parent = (await agent.sessions.open()).session_id
        child = await act(agent, actor, parent, lambda ctx: ctx.fork())
        await agent.send("old", child)
        await act(agent, actor, child, lambda ctx: ctx.request_compression("full"), text="new")
        await act(agent, actor, child, lambda ctx: ctx.request_compression("again"), text="newer")
        await act(agent, actor, parent, lambda ctx: ctx.merge(child))
        first, again, merge = reader.seen
        # the first compression also covers what the child sees of its parent ("go", the fork's turn)
        assert first == [(text, False, False) for text in ("go", "go", "old", "old", "new")]
        assert again == [("full of 5", False, True), ("new", False, False), ("newer", False, False)]
        assert merge == [  # the child's own messages, every one of them
            ("old", True, False),
            ("old", True, False),
            ("new", True, False),
            ("new", True, False),
            ("full of 5", True, True),
            ("newer", True, False),
            ("newer", False, False),
            ("again of 3", False, True),
        ]


async def test_merge_and_abandon_refuse_what_is_not_an_open_child(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}) as agent:
        parent = (await agent.sessions.open()).session_id
        stranger = (await agent.sessions.open()).session_id
        child = await act(agent, actor, parent, lambda ctx: ctx.fork())
        grandchild = await act(agent, actor, child, lambda ctx: ctx.fork())

        for target in (stranger, grandchild, "no-such-session", parent):
            with pytest.raises(SessionError, match=f"{target!r} is not a child of session {parent!r}"):
                await act(agent, actor, parent, lambda ctx, t=target: ctx.merge(t, summary="x"))
            with pytest.raises(SessionError, match="is not a child"):
                await act(agent, actor, parent, lambda ctx, t=target: ctx.abandon(t))

        await act(agent, actor, parent, lambda ctx: ctx.merge(child, summary="done"))
        with pytest.raises(SessionError, match=f"child session {child!r} is already merged"):
            await act(agent, actor, parent, lambda ctx: ctx.merge(child, summary="again"))
        with pytest.raises(SessionError, match="already merged"):
            await act(agent, actor, parent, lambda ctx: ctx.abandon(child))
        merges = [m for m in await agent.store.messages(parent) if m.message.metadata.get("merged_from")]
        assert len(merges) == 1


async def test_abandon_closes_a_child_without_bringing_anything_back(tmp_path: Path) -> None:
    actor, recorder = Actor(), EffectRecorder()
    async with running_agent(tmp_path, plugins={"actor": actor, "recorder": recorder}) as agent:
        parent = (await agent.sessions.open()).session_id
        child = await act(agent, actor, parent, lambda ctx: ctx.fork())
        await agent.send("dead end", child)
        before = await agent.store.messages(parent)

        assert await act(agent, actor, parent, lambda ctx: ctx.abandon(child), text="give up") is None
        after = await agent.store.messages(parent)
        assert [m.message.text for m in after[len(before) :]] == ["give up", "give up"], "nothing merged back"
        info = await agent.sessions.get(child)
        assert info is not None and info.status == "abandoned"
        with pytest.raises(SessionError, match="abandoned"):
            await agent.send("more", child)

        await agent.dispatcher.drain()
        [effect] = recorder.named("session_abandoned")
        assert (effect["child"].session_id, effect["child"].status) == (child, "abandoned")
        assert ("actor", "abandon") in await audited(agent, parent)


async def test_get_child_sessions_lists_the_direct_children_oldest_first(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}) as agent:
        parent = (await agent.sessions.open()).session_id
        assert await act(agent, actor, parent, lambda ctx: ctx.get_child_sessions()) == []
        first = await act(agent, actor, parent, lambda ctx: ctx.fork(ForkOptions(reason="a")))
        second = await act(agent, actor, parent, lambda ctx: ctx.fork(ForkOptions(reason="b")))
        await act(agent, actor, first, lambda ctx: ctx.fork())  # a grandchild is not listed
        await act(agent, actor, parent, lambda ctx: ctx.abandon(second))

        children = await act(agent, actor, parent, lambda ctx: ctx.get_child_sessions())
        assert [(c.session_id, c.status, c.metadata["fork_reason"]) for c in children] == [
            (first, "active", "a"),
            (second, "abandoned", "b"),
        ]
        assert all(c.parent_session_id == parent for c in children)
        # a pure read: the audit trail records what plugins did, not what they looked at
        assert [action for _, action in await audited(agent, parent)] == ["fork", "fork", "abandon"]


# ---------------------------------------------------------------------- the context window


async def test_context_window_levels_follow_the_configured_window(tmp_path: Path) -> None:
    actor = Actor()
    async with running_agent(tmp_path, plugins={"actor": actor}, model={"context_window": 100}) as agent:
        sid = (await agent.sessions.open()).session_id
        measured: list[ContextWindowState] = []
        for text in ("hi", "y" * 96, "z" * 40):
            measured.append(
                await act(agent, actor, sid, lambda ctx: ctx.get_context_window_state(), text=text)
            )

        assert [s.level for s in measured] == ["ok", "warn", "critical"]
        assert all(s.max_tokens == 100 and s.ratio == s.current_tokens / 100 for s in measured)
        assert measured[0].current_tokens < measured[1].current_tokens < measured[2].current_tokens
        assert await agent.store.audit_events(sid) == [], "a pure read is not audited"


class ServesBig:
    """A model plugin's answer to ``model_names``: the name ``[model]`` asks for must be served."""

    @hookimpl
    def model_names(self) -> list[str]:
        return ["small", "big"]


async def test_the_model_named_in_config_picks_its_window(tmp_path: Path) -> None:
    actor = Actor()
    model = {"name": "big", "context_window": 10, "context_windows": {"big": 1000}}
    plugins = {"actor": actor, "model": ServesBig()}
    async with running_agent(tmp_path, plugins=plugins, model=model) as agent:
        sid = (await agent.sessions.open()).session_id
        state = await act(agent, actor, sid, lambda ctx: ctx.get_context_window_state())
        assert (state.max_tokens, state.level) == (1000, "ok")


class TokenCounter:
    """Answers ``session_token_count``: 100 tokens a message."""

    def __init__(self) -> None:
        self.counted: list[list[str]] = []

    @hookimpl
    def session_token_count(self, messages: list[Message]) -> int:
        self.counted.append([m.text for m in messages])
        return 100 * len(messages)


async def test_a_plugin_answering_session_token_count_is_used(tmp_path: Path) -> None:
    actor, counter = Actor(), TokenCounter()
    plugins = {"actor": actor, "counter": counter}
    async with running_agent(tmp_path, plugins=plugins, model={"context_window": 1000}) as agent:
        sid = (await agent.sessions.open()).session_id
        state = await act(agent, actor, sid, lambda ctx: ctx.get_context_window_state(), text="one")
        assert (state.current_tokens, state.level) == (200, "ok")
        assert counter.counted == [["one", "one"]]

        async def contribute_and_measure(ctx: SessionExtensionContext) -> ContextWindowState:
            await ctx.contribute_context("extra", "counted too")
            return await ctx.get_context_window_state()

        state = await act(agent, actor, sid, contribute_and_measure, text="two")
        assert (state.current_tokens, state.ratio, state.level) == (500, 0.5, "ok")
        assert counter.counted[-1][-1] == f"{CONTEXT_HEADER}\nextra: counted too"
        await agent.send("three", sid)  # consumes the contribution
        state = await act(agent, actor, sid, lambda ctx: ctx.get_context_window_state(), text="four")
        assert (state.current_tokens, state.level) == (800, "critical")


# ---------------------------------------------------------------------- compression


async def test_request_compression_archives_older_messages_and_shortens_the_prompt(tmp_path: Path) -> None:
    actor, recorder, spy = Actor(), EffectRecorder(), PromptSpy()
    plugins = {"actor": actor, "recorder": recorder, "spy": spy}
    async with running_agent(tmp_path, plugins=plugins, turns={"keep_recent": 2}) as agent:
        sid = (await agent.sessions.open()).session_id
        for text in ("First question. More words.", "Second question!", "Third one?"):
            await agent.send(text, sid)
        await act(agent, actor, sid, lambda ctx: ctx.request_compression("too long"), text="fourth")
        fifth = await agent.send("fifth", sid)

        summary = (
            "Summary of earlier conversation:\nuser: First question.\nassistant: First question.\n"
            "user: Second question!\nassistant: Second question!\nuser: Third one?\nassistant: Third one?"
        )
        assert spy.of(fifth.turn) == [
            ("system", summary),
            ("user", "fourth"),
            ("assistant", "fourth"),
            ("user", "fifth"),
        ]
        stored = await agent.store.messages(sid)
        assert [(m.message.text, m.compressed, m.summary) for m in stored[:6]] == [
            (m.message.text, True, False) for m in stored[:6]
        ]
        assert len(stored) == 6 + 2 + 1 + 2, "nothing deleted: 6 archived, 2 kept, the summary, turn 5"
        assert [m.text for m in await agent.sessions.history(sid)][:2] == [
            "First question. More words.",
            "First question. More words.",
        ]
        assert [(m.summary, m.compressed) for m in stored[6:]] == [
            (False, False),
            (False, False),
            (True, False),
            (False, False),
            (False, False),
        ]
        # readers of the history see the flags; the stored bodies and the prompt do not carry them
        history = await agent.sessions.history(sid)
        flags = [(m.metadata.get("compressed", False), m.metadata.get("summary", False)) for m in history]
        assert flags == [(True, False)] * 6 + [(False, False)] * 2 + [(False, True)] + [(False, False)] * 2
        assert history[8].metadata["reason"] == "too long", "the summary keeps its own metadata"
        assert stored[0].message.metadata == {} and "summary" not in stored[8].message.metadata

        await agent.dispatcher.drain()
        [effect] = recorder.named("session_compressed")
        assert (effect["compressed"], effect["reason"], effect["summary"].text) == (6, "too long", summary)
        [event] = [e for e in await agent.store.audit_events(sid) if e.action == "compress"]
        assert (event.extension_id, event.detail["compressed"]) == ("actor", 6)


async def test_request_compression_uses_a_session_compress_plugin(tmp_path: Path) -> None:
    actor, summarizer, spy = Actor(), Summarizer(), PromptSpy()
    plugins = {"actor": actor, "spy": spy, "summarizer": summarizer}
    async with running_agent(tmp_path, plugins=plugins, turns={"keep_recent": 1}) as agent:
        sid = (await agent.sessions.open()).session_id
        await agent.send("one", sid)
        await act(agent, actor, sid, lambda ctx: ctx.request_compression("budget"), text="two")
        after = await agent.send("three", sid)
        assert summarizer.asked == [(["one", "one", "two"], "budget")]
        assert spy.of(after.turn) == [
            ("system", "3 messages summarised (budget)"),
            ("assistant", "two"),
            ("user", "three"),
        ]


async def test_compressing_too_little_is_skipped_and_audited(tmp_path: Path) -> None:
    actor, recorder = Actor(), EffectRecorder()
    async with running_agent(tmp_path, plugins={"actor": actor, "recorder": recorder}) as agent:
        sid = (await agent.sessions.open()).session_id
        await act(agent, actor, sid, lambda ctx: ctx.request_compression("early"))
        assert not any(m.compressed or m.summary for m in await agent.store.messages(sid))
        await agent.dispatcher.drain()
        assert recorder.named("session_compressed") == []
        assert ("actor", "compress_skipped") in await audited(agent, sid)


# ---------------------------------------------------------------------- send_to_agent


class Peer:
    """Refuses messages to agents whose id starts with ``secret``."""

    @hookimpl
    def agent_message(self, agent_id: str) -> Deny | None:
        return Deny("not a peer") if agent_id.startswith("secret") else None


async def test_send_to_agent_delivers_once_to_the_other_agents_inbox(tmp_path: Path) -> None:
    actor, spy = Actor(), PromptSpy()
    turns = {"inbox_poll": 0.05}
    alpha = build_agent(
        tmp_path, plugins={"actor": actor, "peer": Peer()}, agent={"id": "alpha"}, turns=turns
    )
    beta = build_agent(tmp_path, plugins={"spy": spy}, agent={"id": "beta"}, turns=turns)
    async with alpha, beta:
        sid = (await alpha.sessions.open()).session_id
        ping = Message.of("user", "ping from alpha")
        assert await act(alpha, actor, sid, lambda ctx: ctx.send_to_agent("beta", ping)) is None
        inbox = inbox_session_id("beta", "alpha")

        async def answered() -> bool:
            found = await beta.store.get_session(inbox)
            return found is not None and [t.status for t in await beta.store.turns(inbox)] == ["completed"]

        await eventually(answered)
        await asyncio.sleep(0.25)  # several more polls: nothing is taken twice
        [turn] = await beta.store.turns(inbox)
        assert (turn.initiator, turn.initiator_id) == ("agent", "alpha")
        history = [(m.message.role, m.message.text) for m in await beta.store.messages(inbox)]
        assert history == [("user", "ping from alpha"), ("assistant", "ping from alpha")]
        [item] = await beta.store.inbox("beta")
        assert (item.from_agent, item.session_id, item.turn_id) == ("alpha", inbox, turn.turn_id)
        session = await beta.sessions.get(inbox)
        assert session is not None and session.kind == "agent"
        [event] = [e for e in await alpha.store.audit_events(sid) if e.action == "send_to_agent"]
        assert (event.extension_id, event.detail["to"]) == ("actor", "beta")

        with pytest.raises(
            UnknownAgentError, match=r"no agent 'gamma' uses this store \(known agents: alpha, beta\)"
        ):
            await act(alpha, actor, sid, lambda ctx: ctx.send_to_agent("gamma", ping))
        with pytest.raises(SessionError, match="denied by peer: not a peer"):
            await act(alpha, actor, sid, lambda ctx: ctx.send_to_agent("secret-agent", ping))
        assert len(await beta.store.inbox("beta")) == 1
        assert await alpha.store.inbox("gamma") == []


class Joiner:
    """Summarises by joining the texts it is given: ``[a | b | …]``."""

    @hookimpl
    def session_compress(self, messages: list[Message]) -> str:
        return "[" + " | ".join(m.text for m in messages) + "]"


async def test_compressing_again_soon_keeps_what_the_first_summary_said(tmp_path: Path) -> None:
    actor, spy = Actor(), PromptSpy()
    plugins = {"actor": actor, "joiner": Joiner(), "spy": spy}
    async with running_agent(tmp_path, plugins=plugins, turns={"keep_recent": 2}) as agent:
        sid = (await agent.sessions.open()).session_id
        await agent.send("one", sid)
        await agent.send("two", sid)
        await act(agent, actor, sid, lambda ctx: ctx.request_compression("first"), text="three")
        await act(agent, actor, sid, lambda ctx: ctx.request_compression("second"), text="four")
        fifth = await agent.send("five", sid)
        assert spy.of(fifth.turn) == [
            ("system", "[[one | one | two | two] | three | three]"),
            ("user", "four"),
            ("assistant", "four"),
            ("user", "five"),
        ]


async def test_compression_in_a_fork_leaves_the_parent_alone(tmp_path: Path) -> None:
    actor, spy = Actor(), PromptSpy()
    plugins = {"actor": actor, "joiner": Joiner(), "spy": spy}
    async with running_agent(tmp_path, plugins=plugins, turns={"keep_recent": 2}) as agent:
        parent = (await agent.sessions.open()).session_id
        await agent.send("p1", parent)
        child = await act(agent, actor, parent, lambda ctx: ctx.fork(), text="p2")
        await agent.send("c1", child)
        await act(agent, actor, child, lambda ctx: ctx.request_compression("fork too long"), text="c2")

        in_child = await agent.send("c3", child)
        assert spy.of(in_child.turn) == [
            ("system", "[p1 | p1 | p2 | p2 | c1 | c1]"),
            ("user", "c2"),
            ("assistant", "c2"),
            ("user", "c3"),
        ]
        in_parent = await agent.send("p3", parent)
        assert spy.of(in_parent.turn) == [
            ("user", "p1"),
            ("assistant", "p1"),
            ("user", "p2"),
            ("assistant", "p2"),
            ("user", "p3"),
        ]
        assert not any(m.compressed for m in await agent.store.messages(parent))


async def test_context_survives_a_failed_turn_and_lands_in_the_next_prompt(tmp_path: Path) -> None:
    class FailOnce:
        @hookimpl
        def turn_outbound(self, message: Message) -> None:
            if message.text == "fails":  # the echo of the turn that must fail
                raise RuntimeError("boom")

    spy, actor = PromptSpy(), Actor()
    async with running_agent(tmp_path, plugins={"actor": actor, "spy": spy, "failonce": FailOnce()}) as agent:
        sid = (await agent.send("first")).turn.session_id
        await act(agent, actor, sid, lambda ctx: ctx.contribute_context("note", "remember me"))
        failed = await agent.send("fails", sid)
        assert failed.turn.status == "failed"
        done = await agent.send("after", sid)
        assert done.turn.status == "completed"
    assert any("note: remember me" in text for _, text in spy.of(done.turn))
