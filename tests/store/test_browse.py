"""The console's reads: a page of sessions (filters, search, keyset pages), the turns changed
lately, the audit trail of every session, a turn's own messages, all contributions; on each engine."""

from __future__ import annotations

from turnkit.store import SessionQuery, Store
from turnkit.tracing import TraceRecord, compact
from turnkit_hookspecs import Kind, Message, SessionInfo

from .helpers import Connect, new_session, user


def ids(records: list) -> list[str]:
    return [r.session_id for r in records]


async def test_sessions_come_newest_first_in_keyset_pages(store: Store) -> None:
    for name in ("s1", "s2", "s3", "s4", "s5"):
        await new_session(store, name)
    first = await store.find_sessions(SessionQuery(limit=2))
    assert ids(first) == ["s5", "s4"]
    after = (first[-1].updated_at, first[-1].session_id)
    second = await store.find_sessions(SessionQuery(limit=2, after=after))
    assert ids(second) == ["s3", "s2"]
    last = await store.find_sessions(SessionQuery(limit=2, after=(second[-1].updated_at, "s2")))
    assert ids(last) == ["s1"]


async def test_filters_select_by_kind_status_agent_and_channel(store: Store) -> None:
    await store.create_session(SessionInfo("c1", "chat", metadata={"channel": "http"}), "a1")
    await store.create_session(SessionInfo("c2", "chat", metadata={"channel": "telegram"}), "a2")
    await store.create_session(SessionInfo("t1", "task"), "a1")
    await store.set_session_status("c1", "closed")
    assert ids(await store.find_sessions(SessionQuery(kind="chat"))) == ["c1", "c2"]
    assert ids(await store.find_sessions(SessionQuery(status="closed"))) == ["c1"]
    assert ids(await store.find_sessions(SessionQuery(agent_id="a1"))) == ["c1", "t1"]
    assert ids(await store.find_sessions(SessionQuery(channel="telegram"))) == ["c2"]
    assert ids(await store.find_sessions(SessionQuery(kind="chat", agent_id="a1", channel="http"))) == ["c1"]


async def test_search_finds_an_id_by_its_start_or_a_session_by_the_words_of_a_message(store: Store) -> None:
    for name in ("alpha1", "beta22", "gamma3"):
        await new_session(store, name)
    await store.append_message("alpha1", user("The Quick brown fox"))
    await store.append_message("beta22", user("a lazy dog"))
    await store.append_message("beta22", Message.of("assistant", "quick reply"))
    assert ids(await store.find_sessions(SessionQuery(text="bet"))) == ["beta22"]
    assert ids(await store.find_sessions(SessionQuery(text="QUICK"))) == ["beta22", "alpha1"]
    assert ids(await store.find_sessions(SessionQuery(text="quick fox"))) == ["alpha1"]  # every word
    assert ids(await store.find_sessions(SessionQuery(text="cat"))) == []
    # no query syntax reaches the index: quotes, operators and stars are words or nothing
    for odd in ('"', "fox OR dog", "fo*", "NEAR(", "'; DROP TABLE sessions; --"):
        await store.find_sessions(SessionQuery(text=odd))
    assert len(await store.find_sessions(SessionQuery())) == 3


async def test_a_search_sees_every_committed_message_the_index_taken_in_batches(connect: Connect) -> None:
    """Messages reach the search index after their commit (SQLite), a batch at a time by the
    heartbeat; a search first indexes what is left, including another store's messages."""
    store, other = await connect(), await connect()
    await new_session(store, "early")
    for number in range(5):
        await store.append_message("early", user(f"lantern {number}"))
    first = await store.index_messages(3)
    assert (first, await store.index_messages(3)) in ((3, 2), (0, 0))  # PostgreSQL: none to do
    assert await store.index_messages(None) == 0
    await new_session(other, "late")
    await other.append_message("late", user("a lantern in another process"))
    assert ids(await store.find_sessions(SessionQuery(text="lantern"))) == ["late", "early"]
    assert await other.index_messages(None) == 0, "the search indexed it, once for every store"


async def test_the_turns_changed_since_a_moment_and_a_turns_own_messages(store: Store) -> None:
    await new_session(store, "s1")
    queued = await store.accept("s1", "t1", user("hi"), "user")
    assert [t.turn_id for t in await store.turns_changed(queued.queued_at, 10)] == ["t1"]
    claimed = await store.claim_turn("s1")
    assert claimed is not None
    trace = [TraceRecord("t1", "turn_reply", Kind.RESOLVE, "model", 0.25, "value", started=100.0)]
    finished = await store.finish_turn(
        "t1", "completed", messages=[Message.of("assistant", "hello")], trace=compact(trace)
    )
    assert finished.finished_at is not None
    [changed] = await store.turns_changed(finished.finished_at, 10)
    assert (changed.turn_id, changed.status) == ("t1", "completed")
    assert await store.turns_changed(finished.finished_at + 1, 10) == []
    assert [m.message.text for m in await store.turn_messages("s1", "t1")] == ["hi", "hello"]
    assert await store.trace("t1") == trace


async def test_the_audit_trail_of_every_session_in_pages_and_all_contributions(store: Store) -> None:
    await new_session(store, "s1")
    await new_session(store, "s2")
    for session, plugin, action in (("s1", "p1", "fork"), ("s2", "p2", "merge"), ("s1", "p1", "compress")):
        await store.audit(session, plugin, action)
    page = await store.audit_page(limit=2)
    assert [e.action for e in page] == ["compress", "merge"]
    assert [e.action for e in await store.audit_page(before=page[-1].id)] == ["fork"]
    assert [e.action for e in await store.audit_page(extension_id="p1")] == ["compress", "fork"]
    await store.add_context("s1", "k", "v", "p1", None)
    assert [c.key for c in await store.context_items("s1")] == ["k"]
