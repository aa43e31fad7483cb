"""Forks and merges: each one transaction, so a failure leaves nothing half-done."""

from __future__ import annotations

import pytest
from turnkit.errors import StoreError
from turnkit.store import Acting, Store
from turnkit_hookspecs import Message, SessionInfo

from .helpers import new_session, texts, user

ACTING = Acting("planner", None)


def child_info(child: str = "c1", parent: str = "s1") -> SessionInfo:
    return SessionInfo(child, "chat", parent_session_id=parent, root_session_id=parent)


async def test_a_fork_writes_child_context_first_turn_and_audit_together(store: Store) -> None:
    await new_session(store)
    newest = await store.append_message("s1", user("history"))
    await store.add_context("s1", "k", "v", "ext", None)
    record, turn = await store.fork(
        child_info(),
        "agent",
        inherit_context=True,
        initial_message=user("look into it"),
        acting=ACTING,
        reason="explore",
    )
    assert (record.info.parent_session_id, record.info.fork_point) == ("s1", newest.id)
    assert turn is not None and (turn.session_id, turn.initiator, turn.initiator_id) == (
        "c1",
        "extension",
        "planner",
    )
    assert [(c.key, c.value, c.extension_id) for c in await store.pending_context("c1")] == [
        ("k", "v", "ext")
    ]
    assert texts(await store.messages("c1", lineage=True)) == ["history"]
    [event] = await store.audit_events("s1")
    assert (event.extension_id, event.action) == ("planner", "fork")
    assert event.detail == {"child": "c1", "reason": "explore", "fork_point": newest.id}


async def test_a_fork_that_fails_leaves_nothing(store: Store) -> None:
    await new_session(store)
    await new_session(store, "c1")
    with pytest.raises(StoreError, match="'c1' already exists"):
        await store.fork(
            child_info(), "agent", inherit_context=True, initial_message=user("x"), acting=ACTING, reason=""
        )
    assert await store.audit_events("s1") == [] and await store.turns("c1") == []


async def test_a_merge_writes_summary_status_and_audit_together(store: Store) -> None:
    await new_session(store)
    await store.fork(
        child_info(), "agent", inherit_context=False, initial_message=None, acting=ACTING, reason=""
    )
    stored = await store.merge("s1", "c1", Message.of("system", "the answer"), ACTING)
    assert texts(await store.messages("s1")) == ["the answer"]
    assert (await store.get_session("c1")).info.status == "merged"  # type: ignore[union-attr]
    assert [(e.action, e.detail) for e in await store.audit_events("s1")][-1] == (
        "merge",
        {"child": "c1", "message_id": stored.id},
    )
    await store.abandon("s1", "c1", ACTING)
    assert (await store.get_session("c1")).info.status == "abandoned"  # type: ignore[union-attr]


async def test_a_merge_that_fails_leaves_the_child_as_it_was(store: Store) -> None:
    await new_session(store)
    await store.fork(
        child_info(), "agent", inherit_context=False, initial_message=None, acting=ACTING, reason=""
    )
    with pytest.raises(StoreError, match="unknown session 'ghost'"):
        await store.merge("ghost", "c1", Message.of("system", "lost"), ACTING)
    assert (await store.get_session("c1")).info.status == "active"  # type: ignore[union-attr]
