"""Agents and sessions: creation, lookup, listing, children and status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from turnkit.errors import StoreError
from turnkit.store import Store
from turnkit_hookspecs import SessionInfo

from .helpers import new_session, user


async def test_agents_are_registered_once_and_listed_sorted(store: Store) -> None:
    for agent_id in ("zeta", "alpha", "zeta"):
        await store.register_agent(agent_id)
    assert await store.agents() == ["alpha", "zeta"]


async def test_a_session_reads_back_as_created(store: Store) -> None:
    info = SessionInfo("s1", "task", metadata={"goal": "ship", "tags": ["a", "b"], "n": 3})
    created = await store.create_session(info, "agent")
    fetched = await store.get_session("s1")
    assert fetched == created
    assert fetched.info == info
    assert fetched.agent_id == "agent"
    assert fetched.created_at == fetched.updated_at
    assert await store.get_session("nope") is None


async def test_a_duplicate_session_id_is_refused(store: Store) -> None:
    await new_session(store, "s1")
    with pytest.raises(StoreError, match="'s1' already exists"):
        await new_session(store, "s1")


async def test_a_fork_must_name_an_existing_parent(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown parent session 'ghost'"):
        await new_session(store, "child", parent_session_id="ghost", fork_point=1)


async def test_sessions_are_listed_most_recently_updated_first(store: Store) -> None:
    await new_session(store, "a", agent_id="one", kind="chat")
    await new_session(store, "b", agent_id="two", kind="task")
    await new_session(store, "c", agent_id="one", kind="task")
    await store.append_message("a", user("touches a"))

    assert [s.session_id for s in await store.list_sessions()] == ["a", "c", "b"]
    assert [s.session_id for s in await store.list_sessions(agent_id="one")] == ["a", "c"]
    assert [s.session_id for s in await store.list_sessions(kind="task")] == ["c", "b"]
    assert [s.session_id for s in await store.list_sessions(agent_id="one", kind="task")] == ["c"]
    assert [s.session_id for s in await store.list_sessions(limit=2)] == ["a", "c"]


async def test_children_are_the_direct_forks_oldest_first(store: Store) -> None:
    await new_session(store, "root")
    await store.append_message("root", user("hello"))
    point = await store.last_message_id("root")
    for child in ("k2", "k1"):
        await new_session(store, child, parent_session_id="root", root_session_id="root", fork_point=point)
    await new_session(store, "grandchild", parent_session_id="k2", root_session_id="root", fork_point=point)

    children = await store.child_sessions("root")
    assert [c.session_id for c in children] == ["k2", "k1"]
    assert children[0].info.parent_session_id == "root"
    assert children[0].info.root_session_id == "root"
    assert children[0].info.fork_point == point
    assert await store.child_sessions("k1") == []


async def test_status_moves_and_is_checked(store: Store) -> None:
    before = await new_session(store, "s1")
    await store.set_session_status("s1", "merged")
    after = await store.get_session("s1")
    assert after is not None
    assert after.info.status == "merged"
    assert after.updated_at > before.updated_at
    with pytest.raises(StoreError, match="'done'"):
        await store.set_session_status("s1", "done")


async def test_unknown_sessions_are_named_in_the_error(store: Store) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.set_session_status("ghost", "closed"),
        lambda: store.append_message("ghost", user("x")),
        lambda: store.messages("ghost"),
        lambda: store.messages("ghost", lineage=True),
        lambda: store.last_message_id("ghost"),
        lambda: store.window("ghost", 10),
        lambda: store.child_sessions("ghost"),
        lambda: store.turns("ghost"),
        lambda: store.claim_turn("ghost"),
        lambda: store.accept("ghost", "t1", user("x"), "user"),
        lambda: store.add_context("ghost", "k", "v", "ext", None),
        lambda: store.pending_context("ghost"),
        lambda: store.audit("ghost", "ext", "fork"),
        lambda: store.audit_events("ghost"),
        lambda: store.compress("ghost", 1, user("summary"), None),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="unknown session 'ghost'"):
            await call()
