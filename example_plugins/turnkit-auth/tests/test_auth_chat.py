"""The plugin on the chat path: the real chat service, an in-process channel, the store's directory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auth_helpers import NAME, chat_agent, handle, said
from turnkit.testing import AgentHarness
from turnkit_auth import NAMESPACE, SeenPrincipal, collection_for, principals, record_seen
from turnkit_hookspecs import Principal, Storage, StorageConflict, StoredRecord

ROLES = {"inbox:boss": "admin", "inbox:ann": "user", "inbox:eve": "guest"}


def stored_role(harness: AgentHarness, session_id: str) -> Any:
    """The role the chat service stored with the session's first inbound message."""
    return harness.history(session_id)[0].metadata["chat"]["principal"]["role"]


# ------------------------------------------------------------------ roles and guards on the chat path


def test_roles_reach_the_stored_message_and_decide_the_turn(turnkit_agent: AgentHarness) -> None:
    chat, inbox = chat_agent(turnkit_agent, {"roles": ROLES})

    boss = handle(turnkit_agent, chat, inbox, said("status?", "boss"))
    guest = handle(turnkit_agent, chat, inbox, said("hi", "eve"))
    stranger = handle(turnkit_agent, chat, inbox, said("hi", "mallory"))

    assert boss.status == "completed" and stored_role(turnkit_agent, boss.session_id) == "admin"
    assert boss.result.turn.initiator_id == "inbox:boss"
    assert guest.status == "denied" and stored_role(turnkit_agent, guest.session_id) == "guest"
    assert guest.result.deny is not None and guest.result.deny.plugin == NAME
    assert "inbox:eve has role 'guest'" in guest.result.deny.reason
    # the plugin does not know mallory and has no default_role: the chat service's default
    # role labels the message, but only this plugin's table admits anyone
    assert stored_role(turnkit_agent, stranger.session_id) == "user"
    assert stranger.status == "denied"
    assert stranger.result.deny is not None and "inbox:mallory has no role" in stranger.result.deny.reason
    # the refused users read the chat service's polite reply, not the reason
    assert inbox.delivered == [
        "status?",
        "Sorry, I can't help with that here.",
        "Sorry, I can't help with that here.",
    ]


def test_default_role_labels_and_decides_strangers(turnkit_agent: AgentHarness) -> None:
    chat, inbox = chat_agent(turnkit_agent, {"roles": ROLES, "default_role": "guest"})
    stranger = handle(turnkit_agent, chat, inbox, said("hi", "mallory"))
    assert stored_role(turnkit_agent, stranger.session_id) == "guest"
    assert stranger.status == "denied"


def test_a_channel_list_narrows_who_may_talk_there(turnkit_agent: AgentHarness) -> None:
    chat, inbox = chat_agent(turnkit_agent, {"roles": ROLES, "channels": {"inbox": ["admin"]}})

    boss = handle(turnkit_agent, chat, inbox, said("status?", "boss"))
    ann = handle(turnkit_agent, chat, inbox, said("hi", "ann"))

    assert boss.status == "completed"
    assert ann.status == "denied"
    # chat_authorize runs inside the chat service's turn_authorize, which reports the deny as its own
    assert ann.result.deny is not None and ann.result.deny.plugin == "chat"
    assert ann.result.deny.reason == (
        "auth: not allowed to talk to this agent "
        "(inbox:ann has role 'user', which channels.inbox does not list)"
    )
    calls = {(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(ann.result.turn.turn_id)}
    assert {
        ("turn_authorize", NAME, "ok"),
        ("chat_authorize", NAME, "deny"),
        ("turn_authorize", "chat", "deny"),
    } <= calls


def test_users_open_to_all_but_one_channel_for_admins(turnkit_agent: AgentHarness) -> None:
    """``initiators.user = "allow"`` with a channel list: anyone may talk, except on the listed channel."""
    settings = {"roles": ROLES, "initiators": {"user": "allow"}, "channels": {"inbox": ["admin"]}}
    chat, inbox = chat_agent(turnkit_agent, settings)
    assert handle(turnkit_agent, chat, inbox, said("hi", "mallory", channel="terminal")).status == "completed"
    assert handle(turnkit_agent, chat, inbox, said("hi", "mallory")).status == "denied"
    assert handle(turnkit_agent, chat, inbox, said("hi", "boss")).status == "completed"


# ------------------------------------------------------------------ the directory of principals


def test_principals_are_recorded_across_agent_starts(tmp_path: Path) -> None:
    """Two agents, one after the other, on the same store: the second continues the first's directory."""
    runs: list[list[SeenPrincipal]] = []
    for messages in ([("ann", "Ann"), ("ann", "Ann"), ("eve", None)], [("ann", "Ann Lee"), ("boss", "Boss")]):
        harness = AgentHarness(tmp_path)
        try:
            chat, inbox = chat_agent(harness, {"roles": ROLES})
            for user, name in messages:
                handle(harness, chat, inbox, said("hi", user, name=name))
            harness.settle()
            runs.append(harness.run(principals(harness.agent.context)))
        finally:
            harness.stop()

    first, second = runs
    assert [(p.principal_id, p.count) for p in first] == [("inbox:ann", 2), ("inbox:eve", 1)]
    assert [(p.principal_id, p.count, p.name) for p in second] == [
        ("inbox:ann", 3, "Ann Lee"),
        ("inbox:boss", 1, "Boss"),
        ("inbox:eve", 1, None),
    ]
    ann_before, ann_after = first[0], second[0]
    assert (ann_after.channel, ann_after.user) == ("inbox", "ann")
    assert ann_after.first_seen == ann_before.first_seen < ann_after.last_seen
    assert ann_after.last_seen.tzinfo is not None and ann_after.last_seen.utcoffset() == timedelta(0)


def test_principals_of_one_channel(turnkit_agent: AgentHarness) -> None:
    chat, inbox = chat_agent(turnkit_agent, {"roles": ROLES})
    handle(turnkit_agent, chat, inbox, said("hi", "ann"))
    handle(turnkit_agent, chat, inbox, said("hi", "ann", channel="terminal"))
    turnkit_agent.settle()
    everyone = turnkit_agent.run(principals(turnkit_agent.agent.context))
    terminal = turnkit_agent.run(principals(turnkit_agent.agent.context, channel="terminal"))
    assert [p.principal_id for p in everyone] == ["inbox:ann", "terminal:ann"]
    assert [p.principal_id for p in terminal] == ["terminal:ann"]


def test_nothing_is_recorded_when_switched_off(turnkit_agent: AgentHarness) -> None:
    chat, inbox = chat_agent(turnkit_agent, {"roles": ROLES, "record_principals": False})
    handle(turnkit_agent, chat, inbox, said("hi", "ann"))
    turnkit_agent.settle()
    assert turnkit_agent.run(principals(turnkit_agent.agent.context)) == []


class RacingStorage:
    """The agent's real storage, with another writer slipping in between the first read and its write.

    It stands for a second agent process recording the same principal at the
    same moment; everything is stored by the real store.
    """

    def __init__(self, storage: Storage, rival: Principal, moment: datetime) -> None:
        self.storage = storage
        self.rival, self.moment = rival, moment
        self.conflicts = 0
        self._raced = False

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        record = await self.storage.get(collection, key)
        if not self._raced:
            self._raced = True
            await record_seen(self.storage, collection, self.rival, self.moment)
        return record

    async def put(
        self,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        *,
        text: str | None = None,
        expect: int | None = None,
    ) -> StoredRecord:
        try:
            return await self.storage.put(collection, key, value, text=text, expect=expect)
        except StorageConflict:
            self.conflicts += 1
            raise


def test_a_conflicting_write_is_retried_not_lost(turnkit_agent: AgentHarness) -> None:
    storage = turnkit_agent.agent.context.storage(NAMESPACE)
    collection = collection_for(turnkit_agent.agent.id)
    early = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    late = early + timedelta(hours=1)
    racing = RacingStorage(storage, Principal("telegram", "42", name="Ann"), early)

    seen = turnkit_agent.run(record_seen(racing, collection, Principal("telegram", "42"), late))  # type: ignore[arg-type]

    assert racing.conflicts == 1
    assert (seen.count, seen.first_seen, seen.last_seen, seen.name) == (2, early, late, "Ann")


def test_sightings_recorded_out_of_order_keep_the_earliest_and_the_latest(
    turnkit_agent: AgentHarness,
) -> None:
    """Effects run in the background, so sightings may be written in any order."""
    storage = turnkit_agent.agent.context.storage(NAMESPACE)
    collection = collection_for(turnkit_agent.agent.id)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(minutes=minute) for minute in (7, 3, 19, 0, 11, 5)]
    for moment in moments:
        turnkit_agent.run(record_seen(storage, collection, Principal("http", "alice"), moment))
    [alice] = turnkit_agent.run(principals(turnkit_agent.agent.context))
    assert (alice.count, alice.first_seen, alice.last_seen) == (len(moments), min(moments), max(moments))
