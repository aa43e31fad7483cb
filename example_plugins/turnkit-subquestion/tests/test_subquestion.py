"""Tests of turnkit-subquestion: a real agent forking, running and merging real child sessions.

The agent is turnkit's fixture kit (``turnkit_agent``): the runtime's
orchestrator on a SQLite file with the scripted model. The plugin is loaded
from this distribution's own entry point, as the runtime loads it; the
other plugins registered here play the parts of a strict guard, a broken
child, a slow model and another summariser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness
from turnkit.testing import entry_point_plugin as load_entry_point
from turnkit_hookspecs import (
    Deny,
    Message,
    Prompt,
    SessionExtensionContext,
    TurnInfo,
    hookimpl,
)
from turnkit_subquestion import SubquestionPlugin, SubquestionSettings, answer_summary, find_subquestions

PROJECT = Path(__file__).resolve().parents[1]
NAME = "subquestion"
ASK = "Plan my weekend in Porto.\n?? What is the weather in Porto?"
WEATHER = "What is the weather in Porto?"


def entry_point_plugin() -> Any:
    """The plugin as the runtime makes it from the entry point in pyproject.toml."""
    return load_entry_point(PROJECT, NAME)


def actions(agent: AgentHarness, session_id: str) -> list[tuple[str, str]]:
    return [(e.action, e.extension_id) for e in agent.audit(session_id)]


def children(agent: AgentHarness, session_id: str) -> list[str]:
    """The children forked from ``session_id``, in order, as its audit trail names them."""
    return [e.detail["child"] for e in agent.audit(session_id) if e.action == "fork"]


class Turns:
    """Records every completed turn: which session, who started it."""

    def __init__(self) -> None:
        self.seen: list[TurnInfo] = []

    @hookimpl
    def turn_completed(self, turn: TurnInfo) -> None:
        self.seen.append(turn)


# ------------------------------------------------------------------ plain functions


def test_subquestions_are_prefixed_lines_asked_once_each() -> None:
    text = "Intro ?? not at the start\n?? First?\n\t?? Second?\n?? First?\n??   \n>> Third?"
    assert find_subquestions(text, "?? ") == ["First?", "Second?"]
    assert find_subquestions(text, ">> ") == ["Third?"]


def test_the_answer_summary_is_cut_to_its_limit() -> None:
    settings = SubquestionSettings(max_answer_chars=10)
    assert answer_summary("Q?", "  0123456789abc  ", settings) == "Sub-question: Q?\nAnswer: 012345678…"


def test_the_entry_point_names_the_plugin_class() -> None:
    assert isinstance(entry_point_plugin(), SubquestionPlugin)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"prefix": "  "}, r"prefix must not be blank, got '  ' @ \$\.plugin\.subquestion"),
        ({"max_questions": 0}, r"'max_questions' must be > 0: 0 @ \$\.plugin\.subquestion"),
        ({"summary": "short"}, r"expected one of 'answer', 'resolve' @ \$\.plugin\.subquestion\.summary"),
        ({"prefixes": ["??"]}, r"prefixes.*\$\.plugin\.subquestion"),
    ],
    ids=["prefix", "max_questions", "summary", "unknown key"],
)
def test_bad_settings_stop_the_agent_naming_the_key(
    turnkit_agent: AgentHarness, settings: dict[str, Any], problem: str
) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings=settings)
    with pytest.raises(ConfigError, match=problem):
        turnkit_agent.start()


# ------------------------------------------------------------------ in a real agent


def test_a_subquestion_is_answered_in_a_child_and_merged_into_the_prompt(turnkit_agent: AgentHarness) -> None:
    turns = Turns()
    turnkit_agent.register(entry_point_plugin(), NAME)
    turnkit_agent.register(turns, "turns")
    turnkit_agent.script("Sunny, 24 degrees.", "Pack light: it will be warm.")

    result = turnkit_agent.send(ASK)
    assert result.turn.status == "completed"
    assert result.reply is not None and result.reply.text == "Pack light: it will be warm."
    parent = result.turn.session_id

    assert actions(turnkit_agent, parent) == [("fork", NAME), ("merge", NAME)]
    [child] = children(turnkit_agent, parent)
    info = turnkit_agent.session(child)
    assert info is not None and info.parent_session_id == parent and info.status == "merged"
    assert info.metadata["fork_reason"] == f"sub-question: {WEATHER}" and info.metadata["forked_by"] == NAME
    assert [m.text for m in turnkit_agent.history(child)] == [WEATHER, "Sunny, 24 degrees."]
    child_turn = next(t for t in turns.seen if t.session_id == child)
    assert (child_turn.initiator, child_turn.initiator_id) == ("extension", NAME)

    # the model answered the parent with the merged answer right after the question
    merged = f"Result of child session {child}: Sub-question: {WEATHER}\nAnswer: Sunny, 24 degrees."
    assert [m.text for m in turnkit_agent.prompts[-1].messages] == [ASK, merged]
    calls = [(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(result.turn.turn_id)]
    assert ("turn_prompt", NAME, "value") in calls

    # ... and the merge stays in the parent's history for the next turns
    assert [m.text for m in turnkit_agent.history(parent)] == [ASK, merged, "Pack light: it will be warm."]
    turnkit_agent.send("And on Sunday?", parent)
    assert merged in [m.text for m in turnkit_agent.prompts[-1].messages]
    assert len(children(turnkit_agent, parent)) == 1  # no sub-question, no fork


def test_several_subquestions_get_one_child_each_merged_in_order(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME)  # the model echoes: each child repeats its question
    porto_q, lisbon_q = "Population of Porto?", "Population of Lisbon?"
    message = f"Compare two cities.\n?? {porto_q}\n?? {lisbon_q}"
    result = turnkit_agent.send(message)
    parent = result.turn.session_id
    assert actions(turnkit_agent, parent) == [
        ("fork", NAME),
        ("fork", NAME),
        ("merge", NAME),
        ("merge", NAME),
    ]
    porto, lisbon = children(turnkit_agent, parent)
    assert [m.text for m in turnkit_agent.prompts[-1].messages] == [
        message,
        f"Result of child session {porto}: Sub-question: {porto_q}\nAnswer: {porto_q}",
        f"Result of child session {lisbon}: Sub-question: {lisbon_q}\nAnswer: {lisbon_q}",
    ]


def test_questions_beyond_the_limit_are_reported_not_asked(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings={"max_questions": 1})
    result = turnkit_agent.send("Two things.\n?? One?\n?? Two?")
    assert actions(turnkit_agent, result.turn.session_id) == [("fork", NAME), ("merge", NAME)]
    note = turnkit_agent.prompts[-1].messages[-1]
    assert note.role == "system" and note.metadata == {"subquestion": "Two?"}
    assert note.text == (
        "Sub-question not answered: Two?\n"
        "Reason: at most 1 sub-question(s) are asked per message ([plugin.subquestion] max_questions)"
    )


def test_a_message_without_subquestions_is_left_alone(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME)
    result = turnkit_agent.send("Just a question? Not a sub-question.")
    assert turnkit_agent.audit(result.turn.session_id) == []
    calls = [(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(result.turn.turn_id)]
    assert ("turn_prompt", NAME, "ok") in calls


def test_a_custom_prefix(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings={"prefix": "ASK:"})
    result = turnkit_agent.send("?? not this\nASK: this?")
    [child] = children(turnkit_agent, result.turn.session_id)
    assert turnkit_agent.history(child)[0].text == "this?"


class FailChildren:
    """Breaks every turn of a child session (its outbound pipeline raises)."""

    @hookimpl
    def turn_outbound(self, ctx: SessionExtensionContext) -> None:
        if ctx.parent_session_id is not None:
            raise RuntimeError("the child's model is down")


def test_a_failing_child_is_abandoned_and_the_turn_still_completes(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME)
    turnkit_agent.register(FailChildren(), "failchildren")
    result = turnkit_agent.send(ASK)
    assert result.turn.status == "completed"
    parent = result.turn.session_id
    assert actions(turnkit_agent, parent) == [("fork", NAME), ("abandon", NAME)]
    [child] = children(turnkit_agent, parent)
    info = turnkit_agent.session(child)
    assert info is not None and info.status == "abandoned"
    note = turnkit_agent.prompts[-1].messages[-1]
    assert note.text.startswith(
        f"Sub-question not answered: {WEATHER}\nReason: child session {child} was abandoned"
    )
    assert "its turn failed" in note.text and "the child's model is down" in note.text
    # nothing was merged: the history holds the question and the reply (the echo model repeated the note)
    assert [m.text for m in turnkit_agent.history(parent)] == [ASK, note.text]


class NoForks:
    """A guard refusing every fork."""

    @hookimpl
    def session_fork(self) -> Deny:
        return Deny("no children today")


def test_a_denied_fork_is_reported_in_the_prompt(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME)
    turnkit_agent.register(NoForks(), "noforks")
    result = turnkit_agent.send(ASK)
    assert result.turn.status == "completed"
    events = turnkit_agent.audit(result.turn.session_id)
    assert [(e.action, e.extension_id, e.detail["denied_by"]) for e in events] == [
        ("fork_denied", NAME, "noforks")
    ]
    note = turnkit_agent.prompts[-1].messages[-1]
    assert note.text == (
        f"Sub-question not answered: {WEATHER}\n"
        f"Reason: could not fork a child session: fork of session '{result.turn.session_id}' "
        "denied by noforks: no children today"
    )


class SlowChildren:
    """A model that answers child sessions only once released (other sessions get the default)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    @hookimpl
    async def turn_reply(self, ctx: SessionExtensionContext) -> Message | None:
        if ctx.parent_session_id is None:
            return None
        await self.release.wait()
        return Message.of("assistant", "too late")


def test_a_child_without_an_answer_in_time_is_abandoned(turnkit_agent: AgentHarness) -> None:
    slow = SlowChildren()
    turnkit_agent.register(entry_point_plugin(), NAME, settings={"timeout": 0.2})
    turnkit_agent.register(slow, "slow")
    result = turnkit_agent.send(ASK)

    async def release() -> None:
        slow.release.set()

    turnkit_agent.run(release())
    assert result.turn.status == "completed"
    assert actions(turnkit_agent, result.turn.session_id) == [("fork", NAME), ("abandon", NAME)]
    assert (
        turnkit_agent.prompts[-1]
        .messages[-1]
        .text.endswith("was abandoned: TimeoutError: no answer within 0.2 s")
    )


class Digest:
    """Another summariser: says what it was asked and lists the texts."""

    @hookimpl
    def session_compress(self, messages: Sequence[Message], reason: str) -> str:
        return f"{reason}: " + " | ".join(m.text for m in messages)


def test_summary_resolve_leaves_the_merge_summary_to_session_compress(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings={"summary": "resolve"})
    turnkit_agent.register(Digest(), "digest")
    turnkit_agent.script("Sunny.")
    result = turnkit_agent.send(ASK)
    [child] = children(turnkit_agent, result.turn.session_id)
    prompt: Prompt = turnkit_agent.prompts[-1]
    assert prompt.messages[-1].text == f"Result of child session {child}: merge: {WEATHER} | Sunny."


class BrokenDigest:
    """A summariser that fails: the merge cannot get its summary."""

    @hookimpl
    def session_compress(self) -> str:
        raise RuntimeError("summariser offline")


def test_a_child_whose_merge_fails_is_abandoned(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings={"summary": "resolve"})
    turnkit_agent.register(BrokenDigest(), "brokendigest")
    result = turnkit_agent.send(ASK)
    assert result.turn.status == "completed"
    assert actions(turnkit_agent, result.turn.session_id) == [("fork", NAME), ("abandon", NAME)]
    note = turnkit_agent.prompts[-1].messages[-1].text
    assert "merging its answer failed: ResolveError" in note and "summariser offline" in note
