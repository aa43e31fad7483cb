"""Tests of turnkit-summarizer: its summaries as plain functions, and the plugin in a real agent.

The agent is turnkit's fixture kit (``turnkit_agent``): a real orchestrator
on a SQLite file with the scripted model. The plugin is loaded from this
distribution's own entry point, as the runtime loads it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness
from turnkit.testing import entry_point_plugin as load_entry_point
from turnkit_hookspecs import ForkOptions, Message, SessionExtensionContext, ToolOutputBlock, hookimpl
from turnkit_summarizer import (
    HEADER,
    MERGE_HEADER,
    SummarizerPlugin,
    SummarizerSettings,
    sentences,
    summarize,
)

PROJECT = Path(__file__).resolve().parents[1]
NAME = "summarizer"

OFFSITE = [
    Message.of(
        "user", "Hi there. We need a venue for the offsite in Lisbon. Budget is 12000 EUR for 40 people."
    ),
    Message.of(
        "assistant", "Sure. I found three venues. The cheapest is Casa Azul at 9500 EUR. Want details?"
    ),
    Message.of("user", "ok thanks"),
    Message.of("user", "Which one has parking? Alice decided we will travel on 14 March."),
    Message.of("assistant", "Casa Azul has parking for 20 cars. Palacio Verde has none."),
]


def entry_point_plugin() -> Any:
    """The plugin as the runtime makes it from the entry point in pyproject.toml."""
    return load_entry_point(PROJECT, NAME)


# ------------------------------------------------------------------ the summary itself


def test_keeps_questions_decisions_numbers_and_the_latest_answer() -> None:
    summary = summarize(OFFSITE, 400)
    assert summary.splitlines() == [
        HEADER,
        "Asked:",
        "- user: Which one has parking?",
        "Noted:",
        "- user: We need a venue for the offsite in Lisbon.",
        "- user: Budget is 12000 EUR for 40 people.",
        "- assistant: I found three venues.",
        "- assistant: The cheapest is Casa Azul at 9500 EUR.",
        "- user: Alice decided we will travel on 14 March.",
        "Last answer:",
        "Casa Azul has parking for 20 cars. Palacio Verde has none.",
    ]
    # within a smaller budget the weakest lines go first
    assert "I found three venues" not in summarize(OFFSITE, 330)


def test_keeps_what_a_first_sentence_digest_loses() -> None:
    """The runtime's built-in summary keeps each message's first sentence; the fact here is the second."""
    messages = [Message.of("user", "Thanks for waiting. The launch moved to 3 June, confirmed by Dana.")]
    assert "- user: The launch moved to 3 June, confirmed by Dana." in summarize(messages, 200)


@pytest.mark.parametrize("budget", [80, 120, 200, 333, 600])
def test_the_summary_never_exceeds_its_budget(budget: int) -> None:
    long_answer = "Casa Azul is on the river. " * 40 + "It costs 9500 EUR."
    messages = [*OFFSITE, Message.of("user", "x" * 900 + "?"), Message.of("assistant", long_answer)]
    summary = summarize(messages, budget)
    assert len(summary) <= budget
    assert summary.startswith(HEADER)


def test_a_second_compression_carries_the_first_summary_over() -> None:
    first = summarize(OFFSITE, 400)
    later = [
        Message.of("system", first),
        Message.of("user", "What about catering? Bob prefers vegetarian food."),
        Message.of("assistant", "Casa Azul offers catering at 35 EUR per person."),
    ]
    second = summarize(later, 600).splitlines()
    assert second[:3] == [HEADER, "Asked:", "- user: Which one has parking?"]
    assert "- user: What about catering?" in second
    assert "- user: Budget is 12000 EUR for 40 people." in second
    assert "- earlier answer: Casa Azul has parking for 20 cars. Palacio Verde has none." in second
    assert second[-2:] == ["Last answer:", "Casa Azul offers catering at 35 EUR per person."]


def test_a_merged_child_summary_is_carried_like_an_earlier_one() -> None:
    asked = [Message.of("user", "How many rooms?"), Message.of("assistant", "Casa Azul has 24 rooms.")]
    child = summarize(asked, 200, 0.75, MERGE_HEADER)
    merged = Message.of("system", f"Result of child session 3f2c: {child}")
    summary = summarize([merged, Message.of("user", "Book it for 40 people, please.")], 300).splitlines()
    assert summary == [
        HEADER,
        "Asked:",
        "- user: How many rooms?",
        "Noted:",
        "- earlier answer: Casa Azul has 24 rooms.",
        "- user: Book it for 40 people, please.",
    ]


def test_list_items_are_sentences_without_their_markers() -> None:
    answer = "Options:\n- Casa Azul, 9500 EUR.\n2) Palacio Verde, 11000 EUR."
    assert sentences(answer) == ["Options:", "Casa Azul, 9500 EUR.", "Palacio Verde, 11000 EUR."]


def test_tool_outputs_are_quoted_but_errors_and_filler_are_not() -> None:
    messages = [
        Message.of("user", "Did order 4711 ship?"),
        Message("tool", (ToolOutputBlock("c1", "Order 4711 shipped on 2 May via DHL."),)),
        Message("tool", (ToolOutputBlock("c2", "database unreachable: timeout 30 s", is_error=True),)),
        Message.of("user", "Great, thanks!"),
    ]
    summary = summarize(messages, 300)
    assert "- tool: Order 4711 shipped on 2 May via DHL." in summary
    assert "unreachable" not in summary and "Great" not in summary


def test_messages_without_text_and_too_small_budgets() -> None:
    assert summarize([Message("tool", ())], 100) == f"{HEADER}\n(no text to keep)"
    with pytest.raises(ValueError, match="budget of at least 80 characters, got 79"):
        summarize(OFFSITE, 79)


def test_sentences_break_at_line_ends_and_sentence_marks_not_in_numbers() -> None:
    assert sentences("Version 3.5 is out!  Try it.\nNew   line") == [
        "Version 3.5 is out!",
        "Try it.",
        "New line",
    ]


# ------------------------------------------------------------------ settings


def test_the_entry_point_names_the_plugin_class() -> None:
    assert isinstance(entry_point_plugin(), SummarizerPlugin)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"max_chars": 10}, r"'max_chars' must be >= 80: 10 @ \$\.plugin\.summarizer"),
        ({"window_share": 0}, r"'window_share' must be > 0.0: 0"),
        (
            {"compress_at": "soon"},
            r"expected one of 'warn', 'critical', 'never' @ \$\.plugin\.summarizer\.compress_at",
        ),
        ({"max_char": 500}, r"max_char.*\$\.plugin\.summarizer"),
    ],
    ids=["max_chars", "window_share", "compress_at", "unknown key"],
)
def test_bad_settings_stop_the_agent_naming_the_key(
    turnkit_agent: AgentHarness, settings: dict[str, Any], problem: str
) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME, settings=settings)
    with pytest.raises(ConfigError, match=problem):
        turnkit_agent.start()


# ------------------------------------------------------------------ in a real agent

#: About 50 tokens each by the runtime's count (four characters a token, plus four per message).
PLANNING = (
    "We are planning the team offsite in Lisbon for 40 people. The budget is 12000 EUR and Alice "
    "owns the booking. Hotels near the river are preferred, ideally with a view of the bridge."
)
ROOMS = (
    "Casa Azul holds 24 rooms and a hall for 60. Bob asked for vegetarian catering. "
    "We should avoid the week of the marathon, which closes the roads."
)
DEADLINE = "When is the deadline for the deposit?"
DEPOSIT = "The deposit of 3000 EUR is due on 14 March."


class WindowLooks:
    """Counts the plugin's looks at a context window: each asks ``session_token_count`` (answered
    by the runtime's counter, as this answers nothing). Reads are not in the audit trail."""

    def __init__(self) -> None:
        self.sessions: list[str] = []

    @hookimpl
    def session_token_count(self, ctx: SessionExtensionContext) -> None:
        self.sessions.append(ctx.session_id)


def shape_small_window(agent: AgentHarness, **settings: Any) -> WindowLooks:
    """A 200-token window (warn from 120) that the third turn below takes to ``warn``."""
    agent.register(entry_point_plugin(), NAME, settings=settings)
    looks = WindowLooks()
    agent.register(looks, "window-looks")
    agent.configure(model={"context_window": 200}, turns={"keep_recent": 2})
    agent.script("Noted.", "Noted.", DEPOSIT)
    return looks


def run_three_turns(agent: AgentHarness) -> str:
    session_id = agent.send(PLANNING).turn.session_id
    for text in (ROOMS, DEADLINE):
        assert agent.send(text, session_id).turn.status == "completed"
    agent.settle()
    return session_id


def test_compresses_when_the_window_reaches_warn_with_its_own_summary(turnkit_agent: AgentHarness) -> None:
    looks = shape_small_window(turnkit_agent, window_share=0.4)
    session_id = run_three_turns(turnkit_agent)

    assert looks.sessions == [session_id] * 4  # after each turn, and for the summary's budget
    events = [(e.action, e.extension_id, e.detail) for e in turnkit_agent.audit(session_id)]
    compressions = [(who, d) for action, who, d in events if action == "compress"]
    assert len(compressions) == 1  # after the third turn: the first two left the window at ok
    who, detail = compressions[0]
    assert who == NAME and detail["compressed"] == 4 and detail["reason"].startswith("context window warn: ")

    history = turnkit_agent.history(session_id)
    summaries = [m for m in history if m.text.startswith(HEADER)]
    assert len(summaries) == 1
    summary = summaries[0].text
    assert len(summary) <= 320  # 40 % of the window, at four characters a token
    assert "12000 EUR" in summary and "Alice" in summary and "24 rooms" in summary
    assert "Noted." not in summary  # an acknowledgement is no answer worth keeping

    # the next prompt starts with the summary, then the two recent messages
    turnkit_agent.send("Thanks, book it.", session_id)
    prompt = turnkit_agent.prompts[-1].messages
    assert [m.text for m in prompt] == [summary, DEADLINE, DEPOSIT, "Thanks, book it."]


def test_compress_at_critical_leaves_a_warn_window_alone(turnkit_agent: AgentHarness) -> None:
    looks = shape_small_window(turnkit_agent, compress_at="critical")
    session_id = run_three_turns(turnkit_agent)
    assert looks.sessions == [session_id] * 3
    assert "compress" not in [e.action for e in turnkit_agent.audit(session_id)]


def test_compress_at_never_does_not_even_look(turnkit_agent: AgentHarness) -> None:
    looks = shape_small_window(turnkit_agent, compress_at="never")
    assert turnkit_agent.audit(run_three_turns(turnkit_agent)) == []
    assert looks.sessions == []


def test_a_session_being_compressed_is_not_compressed_again_at_once(turnkit_agent: AgentHarness) -> None:
    """Two checks of one session at once (two turns' effects): the second leaves it to the first."""
    looks = shape_small_window(turnkit_agent, compress_at="never")
    turnkit_agent.configure(store={"thread": True})  # store calls yield to the loop, as under load
    session_id = run_three_turns(turnkit_agent)
    plugin = SummarizerPlugin()
    plugin.settings = SummarizerSettings(compress_at="warn")

    async def two_at_once() -> None:
        ctx = await turnkit_agent.agent.sessions.extension(session_id, NAME)
        await asyncio.gather(plugin.turn_completed(ctx), plugin.turn_completed(ctx))

    turnkit_agent.run(two_at_once())
    # one look at the window, one compression (whose summary looks at the window for its budget)
    assert looks.sessions == [session_id] * 2
    assert [e.action for e in turnkit_agent.audit(session_id)] == ["compress"]


def test_answers_a_childs_merge_summary_with_its_answer(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(entry_point_plugin(), NAME)
    turnkit_agent.script("Let me check the rooms.", "Casa Azul has 24 rooms. Breakfast is included. Ok.")
    session_id = turnkit_agent.send("Plan the offsite.").turn.session_id

    async def fork_and_merge() -> Message:
        ctx = await turnkit_agent.agent.sessions.extension(session_id, "planner")
        question = Message.of("user", "How many rooms does Casa Azul have?")
        child = await ctx.fork(ForkOptions(reason="rooms", initial_message=question))
        return await ctx.merge(child)

    merged = turnkit_agent.run(fork_and_merge())
    summary = merged.text.split(": ", 1)[1]
    assert summary.splitlines() == [
        MERGE_HEADER,
        "Asked:",
        "- user: How many rooms does Casa Azul have?",
        "Last answer:",
        "Casa Azul has 24 rooms. Breakfast is included. Ok.",
    ]
