"""The audit trail, agent inboxes and stored traces."""

from __future__ import annotations

import pytest
from turnkit.errors import StoreError
from turnkit.store import Store, inbox_session_id
from turnkit.tracing import TraceRecord, compact
from turnkit_hookspecs import Kind

from .helpers import new_session, texts, user


async def test_audit_events_are_kept_in_order_with_their_detail(store: Store) -> None:
    await new_session(store)
    await new_session(store, "other")
    fork = await store.audit("s1", "planner", "fork", {"child": "c1", "reasons": ["split"]}, "t1")
    await store.audit("other", "x", "noise")
    compress = await store.audit("s1", "janitor", "compress")

    assert await store.audit_events("s1") == [fork, compress]
    assert (fork.extension_id, fork.action, fork.turn_id) == ("planner", "fork", "t1")
    assert fork.detail == {"child": "c1", "reasons": ["split"]}
    assert compress.detail == {} and compress.turn_id is None
    with pytest.raises(StoreError, match="detail of audit action 'bad' is not JSON-serialisable"):
        await store.audit("s1", "x", "bad", {"when": object()})


async def test_inbox_items_become_turns_exactly_once(store: Store) -> None:
    first = await store.deliver("bob", "alice", user("hi bob"))
    await store.deliver("carol", "alice", user("hi carol"))
    await store.deliver("bob", "dave", user("from dave"))
    await store.deliver("bob", "alice", user("still there?"))
    assert [i.message.text for i in await store.inbox("bob")] == ["hi bob", "from dave", "still there?"]
    assert first.turn_id is None and first.from_agent == "alice"

    turns = await store.take_inbox("bob")
    assert await store.take_inbox("bob") == []
    alice, dave = inbox_session_id("bob", "alice"), inbox_session_id("bob", "dave")
    assert [(t.session_id, t.number, t.initiator, t.initiator_id) for t in turns] == [
        (alice, 1, "agent", "alice"),
        (dave, 1, "agent", "dave"),
        (alice, 2, "agent", "alice"),
    ]
    session = await store.get_session(alice)
    assert session is not None
    assert (session.agent_id, session.info.kind, session.info.status) == ("bob", "agent", "active")
    taken = await store.inbox("bob")
    assert [(i.session_id, i.turn_id) for i in taken] == [(t.session_id, t.turn_id) for t in turns]
    assert await store.claimable_sessions("bob") == [alice, dave]
    for _ in turns:
        await store.claim_turn(alice)
        await store.claim_turn(dave)
    assert texts(await store.messages(alice)) == ["hi bob"], "one turn at a time"
    assert texts(await store.messages(dave)) == ["from dave"]

    # A later delivery joins the existing conversation.
    await store.deliver("bob", "alice", user("one more"))
    [later] = await store.take_inbox("bob")
    assert (later.session_id, later.number) == (alice, 3)
    assert len(await store.take_inbox("carol")) == 1


async def test_late_trace_records_join_the_turns_trace(store: Store) -> None:
    records = [
        TraceRecord("t1", "turn_inbound", Kind.PIPELINE, "redact", 0.002, "value"),
        TraceRecord("t2", "turn_reply", Kind.RESOLVE, "model", 1.5, "error", "ValueError: nope"),
        TraceRecord(None, "agent_started", Kind.EFFECT, "log", 0.0, "ok"),
        TraceRecord("t1", "turn_completed", Kind.EFFECT, "notify", 0.01, "ok"),
    ]
    await store.append_trace(compact(records))
    await store.append_trace({})
    assert await store.trace("t1") == [records[0], records[3]]
    assert await store.trace("t2") == [records[1]]
    assert isinstance((await store.trace("t2"))[0].kind, Kind)
    assert await store.trace("nothing") == []
