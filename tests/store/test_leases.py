"""Leases: a live owner's turns are never taken over, an expired (or gone) one's are, once.

Two store instances on one database stand for two processes. The fixture's
clock ticks one second per transaction, so a lease of ``1.5`` is over two
transactions later and one of ``10_000`` lasts the whole test.
"""

from __future__ import annotations

import asyncio

import pytest
from turnkit.errors import IdempotencyKeyReused, StoreError
from turnkit.store import Store
from turnkit.store.leases import INTERRUPTED, TAKEN_OVER
from turnkit_hookspecs import Deny, Message, Origin, Principal

from .helpers import Connect, new_session, texts, user

LONG, SHORT = 10_000.0, 1.5


async def running(store: Store, session_id: str = "s1", text: str = "do it") -> str:
    """Queue and claim one turn in ``session_id`` through ``store``; its id."""
    turn = await store.accept(session_id, f"{session_id}-{text}", user(text), "user", "alice")
    assert await store.claim_turn(session_id) is not None
    return turn.turn_id


async def test_a_live_owners_turn_is_never_taken_over(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await new_session(runner, agent_id="me")
    await runner.register_owner("me", "host", 1, 0.0, LONG)
    turn_id = await running(runner)
    assert await other.take_over("me", "rerun") == []
    assert (await other.get_turn(turn_id)).status == "running"  # type: ignore[union-attr]
    assert (await other.get_turn(turn_id)).owner == runner.owner  # type: ignore[union-attr]
    await runner.finish_turn(turn_id, "completed", messages=[Message.of("assistant", "done")])


async def test_an_expired_lease_is_taken_over_once_rerun_first_and_audited(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await new_session(runner, agent_id="me")
    await runner.register_owner("me", "host", 1, 0.0, SHORT)
    turn_id = await running(runner)
    await runner.accept("s1", "next", user("next"), "user")
    [taken] = await other.take_over("me", "rerun")
    assert await other.take_over("me", "rerun") == [], "taken over once"
    assert (taken.turn.turn_id, taken.turn.status, taken.turn.error) == (turn_id, "interrupted", INTERRUPTED)
    assert (taken.owner, taken.policy) == (runner.owner, "rerun")
    assert taken.rerun is not None and taken.rerun.rerun_of == turn_id
    [event] = await other.audit_events("s1")
    assert (event.extension_id, event.action, event.turn_id) == ("turnkit", TAKEN_OVER, turn_id)
    assert event.detail == {
        "turn": turn_id,
        "number": 1,
        "owner": runner.owner,
        "by": other.owner,
        "policy": "rerun",
        "rerun": taken.rerun.turn_id,
    }
    claimed = await other.claim_turn("s1")
    assert claimed is not None and claimed[0].turn_id == taken.rerun.turn_id, "the re-run goes first"
    assert claimed[1].text == "do it" and texts(await other.messages("s1")) == ["do it"], "never copied"
    with pytest.raises(StoreError, match="already finished"):
        await runner.finish_turn(turn_id, "completed", messages=[Message.of("assistant", "late")])
    assert texts(await other.messages("s1")) == ["do it"], "the late result is not recorded"


async def test_a_rerun_taken_over_too_is_reported_and_report_reruns_nothing(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await new_session(runner, agent_id="me")
    await running(runner)
    [first] = await other.take_over("me", "rerun")  # no owner row at all: as good as expired
    assert first.rerun is not None
    assert await runner.claim_turn("s1") is not None
    [again] = await other.take_over("me", "rerun")
    assert (again.turn.turn_id, again.rerun, again.policy) == (first.rerun.turn_id, None, "report")
    await new_session(runner, "s2", agent_id="me")
    await running(runner, "s2")
    [reported] = await other.take_over("me", "report")
    assert (reported.rerun, reported.policy) == (None, "report")
    assert await other.claimable_sessions("me") == []


async def test_only_the_agents_own_turns_are_taken_over(connect: Connect) -> None:
    store = await connect()
    await new_session(store, "mine", agent_id="me")
    await new_session(store, "theirs", agent_id="them")
    await running(store, "mine")
    await running(store, "theirs")
    assert [t.turn.session_id for t in await store.take_over("me", "report")] == ["mine"]
    assert [t.turn.session_id for t in await store.take_over("them", "report")] == ["theirs"]


async def test_renewing_releasing_and_expiring_leases(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await runner.register_owner("me", "host-a", 42, 7.0, LONG)
    assert await runner.renew_owner(LONG)
    [lease] = await other.owners("me")
    assert (lease.id, lease.host, lease.pid, lease.started, lease.live) == (
        runner.owner,
        "host-a",
        42,
        7.0,
        True,
    )
    assert await other.owners("nobody") == []
    await runner.release_owner()
    assert await other.owners() == [], "a released lease holding no turn is gone"
    assert not await runner.renew_owner(LONG), "a released lease is not renewed: it must be taken again"
    await runner.register_owner("me", "host-a", 42, 7.0, LONG)
    await new_session(runner, agent_id="me")
    turn_id = await running(runner)
    await runner.release_owner()
    assert not (await other.owners("me"))[0].live, "a released lease still naming a running turn stays"
    [taken] = await other.take_over("me", "report")
    assert taken.turn.turn_id == turn_id
    assert [lease.id for lease in await other.owners("me")] == [runner.owner], "kept a day, for inquiries"
    await runner.register_owner("me", "host-a", 42, 7.0, LONG)
    await other.expire_owner(runner.owner)
    assert not (await other.owners("me"))[0].live


async def test_a_lease_that_lapsed_is_not_renewed(connect: Connect) -> None:
    runner = await connect()
    await runner.register_owner("me", "h", 1, 0.0, SHORT)
    await runner.agents()
    await runner.agents()
    assert not await runner.renew_owner(LONG)


async def test_claimable_sessions_are_queued_and_idle(connect: Connect) -> None:
    store = await connect()
    for sid in ("busy", "idle", "empty"):
        await new_session(store, sid, agent_id="me")
    await running(store, "busy")
    await store.accept("busy", "b2", user("later"), "user")
    await store.accept("idle", "i1", user("waiting"), "user")
    assert await store.claimable_sessions("me") == ["idle"]


async def test_an_idempotency_key_names_one_turn_per_agent(connect: Connect) -> None:
    one, two = await connect(), await connect()
    await new_session(one, agent_id="me")
    await new_session(one, "s2", agent_id="me")
    await new_session(one, "theirs", agent_id="them")
    first = await one.accept("s1", "t1", user("pay"), "user", idempotency_key="k")
    again = await two.accept("s1", "t2", user("pay"), "user", idempotency_key="k")
    assert again == first and [t.turn_id for t in await two.turns("s1")] == ["t1"]
    turn, claim = await two.accept_and_claim("s1", "t3", user("pay"), "user", None, 10, idempotency_key="k")
    assert (turn.turn_id, claim) == ("t1", None)
    with pytest.raises(IdempotencyKeyReused, match="'k' was used for a message to session 's1'"):
        await two.accept("s2", "t4", user("pay"), "user", idempotency_key="k")
    assert await two.turns("s2") == []
    assert (await two.accept("theirs", "t5", user("pay"), "user", idempotency_key="k")).turn_id == "t5"
    assert await one.forget_idempotency_keys(before=0) == 0
    assert await one.forget_idempotency_keys(before=10**12) == 2
    assert (await one.accept("s1", "t6", user("pay"), "user", idempotency_key="k")).turn_id == "t6"


async def test_outcomes_tell_a_waiting_process_how_a_turn_ended(connect: Connect) -> None:
    runner, waiter = await connect(), await connect()
    await new_session(runner)
    for n in (1, 2, 3):
        await runner.accept("s1", f"t{n}", user(f"m{n}"), "user")
    [queued] = await waiter.outcomes(["t1"])
    assert (queued.turn.status, queued.busy, queued.reply, queued.deny) == ("queued", False, None, None)
    await runner.claim_turn("s1")
    steps = [Message.of("assistant", "thinking"), Message.of("assistant", "answer")]
    assert (await waiter.outcomes(["t2"]))[0].busy
    await runner.finish_turn("t1", "completed", messages=steps)
    await runner.claim_turn("s1")
    await runner.finish_turn("t2", "denied", error="denied by gate: no", deny=Deny("no", "gate"))
    await runner.claim_turn("s1")
    await runner.finish_turn("t3", "failed", error="boom")
    done = {o.turn.turn_id: o for o in await waiter.outcomes(["t1", "t2", "t3", "ghost"])}
    assert sorted(done) == ["t1", "t2", "t3"]
    assert done["t1"].reply is not None and done["t1"].reply.text == "answer"
    assert done["t2"].deny == Deny("no", "gate") and done["t2"].reply is None
    assert (done["t3"].turn.error, done["t3"].reply) == ("boom", None)


async def test_queued_turns_come_in_running_order_with_their_messages(connect: Connect) -> None:
    store = await connect()
    await new_session(store)
    await running(store)
    await store.accept("s1", "t2", user("second"), "user")
    await store.accept("s1", "t3", user("third"), "user")
    [taken] = await store.take_over("agent", "rerun")
    queued = await store.queued_turns("s1")
    assert taken.rerun is not None
    assert [(t.turn_id, m.text) for t, m in queued] == [
        (taken.rerun.turn_id, "do it"),
        ("t2", "second"),
        ("t3", "third"),
    ]


async def test_changed_hears_another_connections_commit(connect: Connect) -> None:
    watcher, writer = await connect(), await connect()
    while await watcher.changed(0.3):  # the first looks set where "changed" counts from
        pass
    await new_session(writer)
    await writer.accept("s1", "t1", user("hi"), "user")
    assert await watcher.changed(2.0)


async def test_one_key_racing_into_two_sessions_is_refused_as_reused(connect: Connect) -> None:
    one, two = await connect(), await connect()
    await new_session(one, agent_id="me")
    await new_session(one, "s2", agent_id="me")
    found = await asyncio.gather(
        one.accept("s1", "t1", user("pay"), "user", idempotency_key="k"),
        two.accept("s2", "t2", user("pay"), "user", idempotency_key="k"),
        return_exceptions=True,
    )
    [error] = [f for f in found if isinstance(f, BaseException)]
    assert isinstance(error, IdempotencyKeyReused), error
    assert len(await one.turns("s1")) + len(await one.turns("s2")) == 1


async def test_a_turns_origin_is_stored_seen_by_every_process_and_kept_by_its_rerun(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await new_session(runner, agent_id="me")
    await runner.register_owner("me", "host", 1, 0.0, SHORT)
    origin = Origin("http", "chat-7", Principal("http", "ann", name="Ann"), metadata={"ip": "10.0.0.1"})
    turn = await runner.accept("s1", "t1", user("hi"), "user", "http:ann", origin=origin)
    assert turn.info.origin == origin
    assert await runner.claim_turn("s1") is not None
    assert (await other.get_turn("t1")).info.origin == origin  # type: ignore[union-attr]
    [taken] = await other.take_over("me", "rerun")
    assert taken.rerun is not None and taken.rerun.info.origin == origin
    plain = await runner.accept("s1", "t2", user("no channel"), "user")
    assert plain.info.origin is None and (await other.get_turn("t2")).origin is None  # type: ignore[union-attr]
