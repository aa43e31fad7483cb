"""Durability and sharing: reopening a store, and two stores on one database (two processes)."""

from __future__ import annotations

import asyncio

from turnkit.store import Store

from .helpers import Connect, new_session, texts, user


async def test_everything_survives_close_and_reopen(connect: Connect) -> None:
    first = await connect()
    await new_session(first, agent_id="me")
    await first.register_agent("me")
    await first.accept("s1", "t1", user("hello"), "user")
    await first.add_context("s1", "k", "v", "ext", None)
    await first.close()
    await first.close()  # twice is fine

    again = await connect()
    assert await again.agents() == ["me"]
    assert [t.turn_id for t in await again.turns("s1")] == ["t1"]
    assert [c.key for c in await again.pending_context("s1")] == ["k"]
    assert await again.claimable_sessions("me") == ["s1"]
    claimed = await again.claim_turn("s1")
    assert claimed is not None and claimed[1].text == "hello"


async def test_two_stores_on_one_database_share_writes_and_the_lease(connect: Connect) -> None:
    one, two = await connect(), await connect()
    await new_session(one)
    await two.accept("s1", "t1", user("from two"), "user")
    await one.accept("s1", "t2", user("from one"), "user")
    assert [t.turn_id for t in await two.turns("s1")] == ["t1", "t2"]

    claimed = await one.claim_turn("s1")
    assert claimed is not None and claimed[0].turn_id == "t1"
    assert await two.claim_turn("s1") is None, "the lease holds across stores"
    await one.finish_turn("t1", "completed", messages=[user("reply")])
    claimed = await two.claim_turn("s1")
    assert claimed is not None and claimed[0].turn_id == "t2"
    assert texts(await one.messages("s1")) == ["from two", "reply", "from one"]


async def test_racing_stores_hand_out_each_turn_once(connect: Connect) -> None:
    stores: list[Store] = [await connect() for _ in range(3)]
    for n in range(4):
        await new_session(stores[0], f"s{n}")
        await stores[0].accept(f"s{n}", f"t{n}", user("go"), "user")
    results = await asyncio.gather(*(s.claim_turn(f"s{n}") for s in stores for n in range(4)))
    claimed = sorted(r[0].turn_id for r in results if r is not None)
    assert claimed == ["t0", "t1", "t2", "t3"]
