"""Turns: acceptance, the per-session lease, finishing, restarts and re-runs; contributed context."""

from __future__ import annotations

import asyncio

import pytest
from turnkit.errors import StoreError
from turnkit.store import Store
from turnkit.tracing import TraceRecord, compact
from turnkit_hookspecs import Kind, Message

from .helpers import new_session, texts, user


async def test_accept_queues_numbered_turns_holding_their_message(store: Store) -> None:
    before = await new_session(store, "a")
    await new_session(store, "b")
    first = await store.accept("a", "t1", user("one"), "user", "alice")
    await store.accept("b", "t2", user("other"), "system")
    second = await store.accept("a", "t3", user("two"), "extension", "memory")

    assert (first.number, second.number) == (1, 2)
    assert (await store.accept("b", "t4", user("x"), "user")).number == 2
    assert (first.status, first.started_at, first.message_id) == ("queued", None, None)
    assert (first.initiator, first.initiator_id) == ("user", "alice")
    assert await store.get_turn("t1") == first
    assert await store.turns("a") == [first, second]
    assert await store.messages("a") == [], "a queued message is not in the history yet"
    session = await store.get_session("a")
    assert session is not None and session.updated_at > before.updated_at


async def test_queued_messages_enter_the_history_in_conversational_order(store: Store) -> None:
    await new_session(store)
    await store.accept("s1", "t1", user("q1"), "user")
    await store.accept("s1", "t2", user("q2"), "user")
    claimed = await store.claim_turn("s1")
    assert claimed is not None
    turn, message = claimed
    [stored] = await store.messages("s1")
    assert (stored.id, stored.turn_id, stored.message) == (turn.message_id, "t1", message)
    assert texts(await store.window("s1", 10)) == ["q1"], "q2 is not in t1's prompt"
    await store.finish_turn("t1", "completed", messages=[Message.of("assistant", "a1")])
    await store.claim_turn("s1")
    assert texts(await store.messages("s1")) == ["q1", "a1", "q2"]


async def test_a_turn_id_is_accepted_once(store: Store) -> None:
    await new_session(store)
    await store.accept("s1", "t1", user("one"), "user")
    with pytest.raises(StoreError, match="turn 't1' already exists"):
        await store.accept("s1", "t1", user("again"), "user")
    assert len(await store.turns("s1")) == 1
    claimed = await store.claim_turn("s1")
    assert claimed is not None and claimed[1].text == "one"


async def test_claims_are_a_lease_in_fifo_order(store: Store) -> None:
    await new_session(store)
    assert await store.claim_turn("s1") is None
    for n in (1, 2, 3):
        await store.accept("s1", f"t{n}", user(f"m{n}"), "user")

    claimed = await store.claim_turn("s1")
    assert claimed is not None
    turn, message = claimed
    assert (turn.turn_id, turn.status, message.text) == ("t1", "running", "m1")
    assert turn.message_id is not None and message.id == str(turn.message_id)
    assert turn.started_at is not None
    assert await store.get_turn("t1") == turn
    assert await store.claim_turn("s1") is None, "a second claim while t1 runs"

    await store.finish_turn("t1", "completed")
    second = await store.claim_turn("s1")
    assert second is not None and second[0].turn_id == "t2"
    await store.finish_turn("t2", "failed", error="boom")
    third = await store.claim_turn("s1")
    assert third is not None and third[0].turn_id == "t3"


async def test_concurrent_claims_hand_out_one_turn(store: Store) -> None:
    await new_session(store)
    for n in range(5):
        await store.accept("s1", f"t{n}", user(f"m{n}"), "user")
    results = await asyncio.gather(*(store.claim_turn("s1") for _ in range(10)))
    claimed = [r[0].turn_id for r in results if r is not None]
    assert claimed == ["t0"]


async def test_sessions_lease_independently(store: Store) -> None:
    for sid in ("a", "b"):
        await new_session(store, sid)
        await store.accept(sid, f"{sid}-1", user("hi"), "user")
    assert await store.claim_turn("a") is not None
    assert await store.claim_turn("b") is not None


async def test_finish_turn_commits_messages_status_consumed_context_and_trace_together(store: Store) -> None:
    await new_session(store)
    early = await store.add_context("s1", "weather", "sunny", "weather-ext", None)
    other = await store.add_context("s1", "mood", "calm", "mood-ext", None)
    await store.accept("s1", "t1", user("hi"), "user")
    await store.claim_turn("s1")
    late = await store.add_context("s1", "later", "for the next turn", "ext", "t1")
    trace = [
        TraceRecord("t1", "turn_authorize", Kind.GUARD, "auth", 0.001, "ok"),
        TraceRecord("t1", "turn_reply", Kind.RESOLVE, "model", 0.25, "value"),
        TraceRecord("t1", "turn_completed", Kind.EFFECT, "log", 0.5, "timeout", "took too long"),
    ]
    steps = [
        Message.of("assistant", "calling a tool"),
        Message.of("tool", "tool output"),
        Message.of("assistant", "done"),
    ]
    finished = await store.finish_turn(
        "t1", "completed", messages=steps, consumed=[early.id, 999_999], trace=compact(trace)
    )

    assert finished.status == "completed" and finished.error is None and finished.finished_at is not None
    assert await store.get_turn("t1") == finished
    history = await store.messages("s1")
    assert texts(history) == ["hi", "calling a tool", "tool output", "done"]
    assert {m.turn_id for m in history} == {"t1"}
    assert [c.id for c in await store.pending_context("s1")] == [other.id, late.id]
    assert await store.trace("t1") == trace


async def test_a_finished_turn_cannot_finish_again(store: Store) -> None:
    await new_session(store)
    await store.accept("s1", "t1", user("hi"), "user")
    await store.claim_turn("s1")
    await store.finish_turn("t1", "denied", error="no")
    with pytest.raises(StoreError, match="'t1' already finished"):
        await store.finish_turn("t1", "completed", messages=[Message.of("assistant", "late")])
    assert texts(await store.messages("s1")) == ["hi"]
    with pytest.raises(StoreError, match="unknown turn 'ghost'"):
        await store.finish_turn("ghost", "completed")
    with pytest.raises(StoreError, match="cannot finish as 'running'"):
        await store.finish_turn("t1", "running")


async def test_pending_context_leaves_out_the_contributing_turn(store: Store) -> None:
    await new_session(store)
    before = await store.add_context("s1", "a", "1", "ext", None)
    during_t1 = await store.add_context("s1", "b", "2", "ext", "t1")
    during_t0 = await store.add_context("s1", "c", "3", "other", "t0")
    assert await store.pending_context("s1") == [before, during_t1, during_t0]
    assert await store.pending_context("s1", exclude_turn="t1") == [before, during_t0]
    assert during_t1.extension_id == "ext" and during_t1.consumed_by is None
