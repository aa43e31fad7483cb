"""Histories: round trips, order, lineage across forks, compression and the prompt window."""

from __future__ import annotations

import attrs
import pytest
from turnkit.errors import StoreError
from turnkit.store import Store
from turnkit_hookspecs import (
    AttachmentBlock,
    Base64Source,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    UrlSource,
)

from .helpers import Connect, new_session, texts, user

EVERY_BLOCK = Message(
    "assistant",
    (
        TextBlock("hello, wörld"),
        ImageBlock(Base64Source("image/png", "iVBORw0KGgo="), alt="a dot"),
        DocumentBlock(UrlSource("https://example.org/a.pdf", "application/pdf"), title="A"),
        AttachmentBlock("file", "song.ogg", source=UrlSource("file:///tmp/song.ogg")),
        AttachmentBlock("directory", "src", path="/work/src"),
        ReasoningBlock("first think"),
        ToolCallBlock("call-1", "shell.run", {"argv": ["ls", "-l"], "env": {"A": 1}, "dry": None}),
        ToolOutputBlock("call-1", "permission denied", is_error=True),
    ),
    author="agent:me",
    metadata={"model": "echo", "tokens": 12},
)


async def test_every_block_type_round_trips(store: Store) -> None:
    await new_session(store)
    stored = await store.append_message("s1", EVERY_BLOCK, "t1")
    [fetched] = await store.messages("s1")
    assert fetched == stored
    assert fetched.message == attrs.evolve(EVERY_BLOCK, id=str(stored.id))
    assert fetched.turn_id == "t1"
    assert (fetched.compressed, fetched.summary) == (False, False)


async def test_ids_are_one_store_wide_sequence_in_history_order(store: Store) -> None:
    await new_session(store, "a")
    await new_session(store, "b")
    ids = [(await store.append_message(sid, user(f"{sid}{n}"))).id for n in range(3) for sid in ("a", "b")]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert texts(await store.messages("a")) == ["a0", "a1", "a2"]
    assert texts(await store.messages("b")) == ["b0", "b1", "b2"]
    assert await store.last_message_id("b") == ids[-1]


async def test_a_fork_sees_its_ancestors_up_to_each_fork_point(store: Store) -> None:
    await new_session(store, "root")
    for text in ("r1", "r2"):
        await store.append_message("root", user(text))
    await new_session(
        store, "child", parent_session_id="root", fork_point=await store.last_message_id("root")
    )
    await store.append_message("root", user("r3 (after the fork)"))
    await store.append_message("child", user("c1"))
    await new_session(
        store, "grandchild", parent_session_id="child", fork_point=await store.last_message_id("child")
    )
    await store.append_message("child", user("c2 (after the fork)"))
    await store.append_message("grandchild", user("g1"))

    assert texts(await store.messages("grandchild")) == ["g1"]
    assert texts(await store.messages("grandchild", lineage=True)) == ["r1", "r2", "c1", "g1"]
    assert texts(await store.messages("child", lineage=True)) == ["r1", "r2", "c1", "c2 (after the fork)"]


async def test_a_fork_of_a_fresh_fork_still_sees_the_grandparent(store: Store) -> None:
    await new_session(store, "root")
    await store.append_message("root", user("r1"))
    await new_session(
        store, "child", parent_session_id="root", fork_point=await store.last_message_id("root")
    )
    point = await store.last_message_id("child")
    assert point == await store.last_message_id("root")
    await new_session(store, "grandchild", parent_session_id="child", fork_point=point)
    await store.append_message("root", user("r2 (after both forks)"))
    assert texts(await store.messages("grandchild", lineage=True)) == ["r1"]
    assert texts(await store.window("grandchild", 10)) == ["r1"]


async def test_an_empty_history_has_no_last_message(store: Store) -> None:
    await new_session(store)
    assert await store.last_message_id("s1") is None
    assert await store.window("s1", 10) == []


async def test_compress_marks_the_archive_and_the_window_shows_the_summary(store: Store) -> None:
    await new_session(store)
    stored = [await store.append_message("s1", user(f"m{n}")) for n in range(6)]
    first = await store.compress("s1", stored[3].id, Message.of("system", "summary of m0-m3"), "t9")
    assert first.summary and not first.compressed and first.turn_id == "t9"

    history = await store.messages("s1")
    assert [(m.message.text, m.compressed, m.summary) for m in history] == [
        ("m0", True, False),
        ("m1", True, False),
        ("m2", True, False),
        ("m3", True, False),
        ("m4", False, False),
        ("m5", False, False),
        ("summary of m0-m3", False, True),
    ]
    assert texts(await store.window("s1", 10)) == ["summary of m0-m3", "m4", "m5"]
    assert texts(await store.window("s1", 1)) == ["summary of m0-m3", "m5"]

    # A second compression archives the first summary too.
    await store.append_message("s1", user("m6"))
    await store.compress("s1", first.id, Message.of("system", "summary of m0-m5"), None)
    assert texts(await store.window("s1", 10)) == ["summary of m0-m5", "m6"]
    assert len(await store.messages("s1")) == 9


async def test_the_window_follows_the_lineage_and_prefers_the_forks_own_summary(store: Store) -> None:
    await new_session(store, "root")
    old = [await store.append_message("root", user(f"r{n}")) for n in range(4)]
    await store.compress("root", old[1].id, Message.of("system", "root summary"), None)
    await store.append_message("root", user("r4"))
    await new_session(store, "fork", parent_session_id="root", fork_point=await store.last_message_id("root"))
    await store.append_message("root", user("r5 (unseen)"))
    mine = [await store.append_message("fork", user(f"f{n}")) for n in range(3)]

    assert texts(await store.window("fork", 2)) == ["root summary", "f1", "f2"]
    assert texts(await store.window("fork", 5)) == ["root summary", "r3", "r4", "f0", "f1", "f2"]
    assert texts(await store.window("fork", 50)) == ["root summary", "r2", "r3", "r4", "f0", "f1", "f2"]

    await store.compress("fork", mine[0].id, Message.of("system", "fork summary"), None)
    assert texts(await store.window("fork", 50)) == ["fork summary", "r2", "r3", "r4", "f1", "f2"]
    assert texts(await store.window("root", 2)) == ["root summary", "r4", "r5 (unseen)"]


async def test_the_window_over_a_long_history_is_exactly_the_newest_messages(store: Store) -> None:
    await new_session(store)
    await store.accept("s1", "t1", user("m0"), "user")
    claimed = await store.claim_turn("s1")
    assert claimed is not None and claimed[0].message_id is not None
    await store.finish_turn("t1", "completed", messages=[user(f"m{n}") for n in range(1, 5000)])
    first_id = claimed[0].message_id
    assert first_id == (await store.messages("s1"))[0].id
    await store.compress("s1", first_id + 3999, Message.of("system", "the first 4000"), None)

    window = await store.window("s1", 20)
    assert texts(window) == ["the first 4000"] + [f"m{n}" for n in range(4980, 5000)]
    assert [m.id for m in window[1:]] == sorted(m.id for m in window[1:])
    assert texts(await store.window("s1", 0)) == ["the first 4000"]


async def test_a_window_reads_the_bodies_its_store_has_not_seen(connect: Connect) -> None:
    writer, reader = await connect(), await connect()
    await new_session(writer)
    for n in range(4):
        await writer.append_message("s1", user(f"m{n}"))
    assert texts(await reader.window("s1", 10)) == ["m0", "m1", "m2", "m3"], "nothing cached: all read"
    second = (await writer.messages("s1"))[1]
    await writer.compress("s1", second.id, Message.of("system", "summary of m0-m1"), None)
    await writer.append_message("s1", user("m4"))
    expected = ["summary of m0-m1", "m2", "m3", "m4"]
    assert texts(await reader.window("s1", 10)) == expected, "cached m2, m3 and the unseen rest"
    assert texts(await writer.window("s1", 10)) == expected
    assert [m.id for m in await reader.window("s1", 10)] == [m.id for m in await writer.window("s1", 10)]


async def test_a_message_rolled_back_with_its_transaction_is_never_another_ones(connect: Connect) -> None:
    one, other = await connect(), await connect()
    await new_session(one)
    _, claim = await one.accept_and_claim("s1", "t1", user("first"), "user", None, 10)
    assert claim is not None
    await one.finish_turn("t1", "completed", messages=[Message.of("assistant", "reply")])
    with pytest.raises(StoreError, match="already exists"):  # its message is written, then all undone
        await one.accept_and_claim("s1", "t1", user("rolled back"), "user", None, 10)
    await other.accept_and_claim("s1", "t2", user("kept"), "user", None, 10)  # SQLite may reuse the id
    assert texts(await other.window("s1", 10)) == ["first", "reply", "kept"]
    assert texts(await one.window("s1", 10)) == ["first", "reply", "kept"], "the id is the new message's"
