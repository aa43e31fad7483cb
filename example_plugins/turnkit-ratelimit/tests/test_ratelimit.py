"""turnkit-ratelimit in a real agent (the ``turnkit_agent`` kit), loaded through its entry point.

The clock is injected, so refilling needs no sleeping: the tests move time
forward by hand. Restarts and shared stores use real SQLite files: one
``tmp_path`` holds the store of every agent of a test.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness, entry_point_plugin
from turnkit_hookspecs import Storage, StorageConflict, StoredRecord, TurnInfo
from turnkit_ratelimit import (
    COLLECTION,
    NAMESPACE,
    Bucket,
    BucketStateError,
    Limit,
    RateLimitPlugin,
    retry_after,
    seconds_text,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]
NAME = "ratelimit"
GROUP = "turnkit.plugins"
OFF = {"enabled": False}


class Clock:
    """UNIX seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def declared_entry_point() -> EntryPoint:
    """The entry point as ``pyproject.toml`` declares it (what pip writes into the metadata)."""
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return EntryPoint(NAME, project["entry-points"][GROUP][NAME], GROUP)


def load_plugin(clock: Clock) -> RateLimitPlugin:
    """An instance made as the runtime makes it (the entry point's class, called bare), on ``clock``."""
    plugin = entry_point_plugin(PROJECT_DIR, NAME)
    assert isinstance(plugin, RateLimitPlugin)
    plugin.clock = clock
    return plugin


def limited(harness: AgentHarness, clock: Clock, **settings: Any) -> RateLimitPlugin:
    """Register the plugin on ``harness`` with ``settings`` as ``[plugin.ratelimit]``."""
    plugin = load_plugin(clock)
    harness.register(plugin, NAME, settings=settings)
    return plugin


def statuses(harness: AgentHarness, senders: Sequence[str], session_id: str | None = None) -> list[str]:
    return [harness.send("hi", session_id, initiator_id=s).turn.status for s in senders]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def second_agent(tmp_path: Path) -> Iterator[AgentHarness]:
    """Another agent on the same store file as ``turnkit_agent``."""
    harness = AgentHarness(tmp_path)
    try:
        yield harness
    finally:
        harness.stop()


# ------------------------------------------------------------------ the limit in a running agent


def test_a_burst_is_denied_after_the_capacity_saying_when_to_retry(
    turnkit_agent: AgentHarness, clock: Clock
) -> None:
    limited(turnkit_agent, clock, per_principal={"capacity": 3, "refill_per_second": 0.5}, per_session=OFF)

    assert statuses(turnkit_agent, ["u1"] * 3) == ["completed"] * 3
    denied = turnkit_agent.send("one more", initiator_id="u1")

    assert denied.turn.status == "denied"
    assert denied.deny is not None and denied.deny.plugin == NAME
    assert denied.deny.reason == "rate limit: too many turns from 'u1'; retry in 2 s"
    calls = [(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(denied.turn.turn_id)]
    assert ("turn_authorize", NAME, "deny") in calls
    assert not any(point == "turn_reply" for point, _, _ in calls)  # the model was never asked


def test_the_bucket_refills_with_time(turnkit_agent: AgentHarness, clock: Clock) -> None:
    limited(turnkit_agent, clock, per_principal={"capacity": 2, "refill_per_second": 0.5}, per_session=OFF)
    assert statuses(turnkit_agent, ["u1"] * 3) == ["completed", "completed", "denied"]

    clock.advance(1.0)  # half a token
    half = turnkit_agent.send("hi", initiator_id="u1")
    assert half.deny is not None and half.deny.reason.endswith("retry in 1 s")
    clock.advance(1.0)
    assert statuses(turnkit_agent, ["u1", "u1"]) == ["completed", "denied"]
    clock.advance(3600)  # never more than the capacity
    assert statuses(turnkit_agent, ["u1"] * 3) == ["completed", "completed", "denied"]


def test_principals_and_sessions_have_buckets_of_their_own(turnkit_agent: AgentHarness, clock: Clock) -> None:
    limited(
        turnkit_agent,
        clock,
        per_principal={"capacity": 2, "refill_per_second": 0.1},
        per_session={"capacity": 3, "refill_per_second": 0.1},
    )
    session = turnkit_agent.send("hi", initiator_id="u1").turn.session_id

    assert statuses(turnkit_agent, ["u1"], session) == ["completed"]  # u1's bucket is empty now
    assert statuses(turnkit_agent, ["u1"]) == ["denied"]  # in a new session too
    assert statuses(turnkit_agent, ["u2"], session) == ["completed"]  # the session's bucket is empty now
    denied = turnkit_agent.send("hi", session, initiator_id="u3")
    assert denied.deny is not None
    assert denied.deny.reason == f"rate limit: too many turns in session {session!r}; retry in 10 s"
    # u3 was refused by the session's bucket: the token its own bucket gave is back
    assert statuses(turnkit_agent, ["u3", "u3", "u3"]) == ["completed", "completed", "denied"]


def test_senders_without_an_id_share_one_bucket(turnkit_agent: AgentHarness, clock: Clock) -> None:
    limited(turnkit_agent, clock, per_principal={"capacity": 1, "refill_per_second": 1.0}, per_session=OFF)
    assert turnkit_agent.send("hi").turn.status == "completed"
    denied = turnkit_agent.send("hi")  # another session, no sender either
    assert denied.deny is not None
    assert denied.deny.reason == "rate limit: too many turns from senders without an id; retry in 1 s"
    assert statuses(turnkit_agent, ["u1"]) == ["completed"]


def test_exempt_initiators_and_principals_are_never_limited(
    turnkit_agent: AgentHarness, clock: Clock
) -> None:
    limited(
        turnkit_agent,
        clock,
        per_principal={"capacity": 1, "refill_per_second": 0.1},
        per_session=OFF,
        exempt_principals=["ops:*"],
    )
    for _ in range(3):
        assert turnkit_agent.send("run", initiator="system", initiator_id="task:nightly").turn.status == (
            "completed"
        )
    assert statuses(turnkit_agent, ["ops:ann"] * 3) == ["completed"] * 3
    assert statuses(turnkit_agent, ["opsann", "opsann"]) == ["completed", "denied"]  # the pattern is exact
    assert turnkit_agent.send("hi", initiator="agent", initiator_id="peer").turn.status == "completed"
    assert turnkit_agent.send("hi", initiator="agent", initiator_id="peer").turn.status == "denied"


def test_a_denied_turn_writes_nothing(turnkit_agent: AgentHarness, clock: Clock) -> None:
    limited(turnkit_agent, clock, per_principal={"capacity": 1, "refill_per_second": 0.1}, per_session=OFF)
    storage = turnkit_agent.agent.context.storage(NAMESPACE)
    turnkit_agent.send("hi", initiator_id="u1")
    before = turnkit_agent.run(storage.get(COLLECTION, "principal:u1"))
    assert statuses(turnkit_agent, ["u1"] * 5) == ["denied"] * 5
    after = turnkit_agent.run(storage.get(COLLECTION, "principal:u1"))
    assert before is not None and after == before
    assert before.value == {"tokens": 0.0, "stamp": clock.now}


# ------------------------------------------------------------------ durable, shared state


def test_the_buckets_survive_a_restart(turnkit_agent: AgentHarness, tmp_path: Path, clock: Clock) -> None:
    settings = {"per_principal": {"capacity": 2, "refill_per_second": 0.5}, "per_session": OFF}
    limited(turnkit_agent, clock, **settings)
    assert statuses(turnkit_agent, ["u1", "u1"]) == ["completed", "completed"]
    turnkit_agent.stop()

    restarted = AgentHarness(tmp_path)
    try:
        limited(restarted, clock, **settings)
        assert statuses(restarted, ["u1"]) == ["denied"]  # no fresh burst after the restart
        clock.advance(2.0)
        assert statuses(restarted, ["u1", "u1"]) == ["completed", "denied"]
    finally:
        restarted.stop()


def test_two_agents_on_one_store_share_the_buckets(
    turnkit_agent: AgentHarness, second_agent: AgentHarness, clock: Clock
) -> None:
    settings = {"per_principal": {"capacity": 3, "refill_per_second": 0.1}, "per_session": OFF}
    for agent_id, harness in (("east", turnkit_agent), ("west", second_agent)):
        harness.configure(agent={"id": agent_id})
        limited(harness, clock, **settings)

    sent = [
        harness.send("hi", initiator_id="u1").turn.status
        for harness in (turnkit_agent, second_agent, turnkit_agent, second_agent, turnkit_agent)
    ]
    assert sent == ["completed", "completed", "completed", "denied", "denied"]
    assert turnkit_agent.agent.id != second_agent.agent.id


# ------------------------------------------------------------------ compare-and-set, failing stores


class RivalStorage:
    """The real storage, with a rival taking a token between this plugin's read and its write, once."""

    def __init__(self, real: Storage, rival: RateLimitPlugin, turn: TurnInfo) -> None:
        self.real, self.rival, self.turn = real, rival, turn
        self.interfered = False
        self.conflicts = 0

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        record = await self.real.get(collection, key)
        if not self.interfered:
            self.interfered = True
            assert await self.rival.turn_authorize(self.turn) is None
        return record

    async def put(self, collection: str, key: str, value: Mapping[str, Any], **kwargs: Any) -> StoredRecord:
        try:
            return await self.real.put(collection, key, value, **kwargs)
        except StorageConflict:
            self.conflicts += 1
            raise


def test_a_write_that_lost_a_race_is_tried_again(turnkit_agent: AgentHarness, clock: Clock) -> None:
    settings = {"per_principal": {"capacity": 2, "refill_per_second": 0.1}, "per_session": OFF}
    plugin = limited(turnkit_agent, clock, **settings)
    turnkit_agent.start()
    rival = load_plugin(clock)
    rival.settings, rival.storage = plugin.settings, plugin.storage
    racing = RivalStorage(plugin.storage, rival, TurnInfo("t-rival", "s-rival", 1, "user", "u1"))
    plugin.storage = racing  # type: ignore[assignment]

    assert statuses(turnkit_agent, ["u1"]) == ["completed"]
    assert racing.conflicts == 1  # its first write found the rival's, and it read the bucket again
    assert statuses(turnkit_agent, ["u1"]) == ["denied"]  # two turns, two tokens: none was lost or doubled


class AlwaysLosing:
    """A storage whose every compare-and-set finds another version."""

    def __init__(self, real: Storage) -> None:
        self.real = real
        self.puts = 0

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        return await self.real.get(collection, key)

    async def put(self, collection: str, key: str, value: Mapping[str, Any], **kwargs: Any) -> StoredRecord:
        self.puts += 1
        raise StorageConflict(f"{key} changed")


class Unreachable:
    """A storage whose database is gone."""

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        raise OSError("disk I/O error")


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        pytest.param(
            AlwaysLosing, "RateLimitBusy(\"bucket 'principal:u1' changed under each of 8", id="busy"
        ),
        pytest.param(lambda real: Unreachable(), "OSError('disk I/O error')", id="storage-error"),
    ],
)
def test_a_bucket_that_cannot_be_metered_denies(
    turnkit_agent: AgentHarness, clock: Clock, broken: Any, error: str
) -> None:
    plugin = limited(turnkit_agent, clock)
    turnkit_agent.start()
    plugin.storage = broken(plugin.storage)

    result = turnkit_agent.send("hi", initiator_id="u1")

    assert result.turn.status == "denied"
    assert result.deny is not None and result.deny.plugin == NAME
    assert error in result.deny.reason
    if isinstance(plugin.storage, AlwaysLosing):
        assert plugin.storage.puts == plugin.attempts


def test_a_bucket_holding_something_else_denies(turnkit_agent: AgentHarness, clock: Clock) -> None:
    limited(turnkit_agent, clock)
    storage = turnkit_agent.agent.context.storage(NAMESPACE)
    turnkit_agent.run(storage.put(COLLECTION, "principal:u1", {"tokens": "many"}))
    result = turnkit_agent.send("hi", initiator_id="u1")
    assert result.deny is not None and "BucketStateError" in result.deny.reason


def test_an_unconfigured_instance_refuses_to_meter(clock: Clock) -> None:
    plugin = load_plugin(clock)
    with pytest.raises(RuntimeError, match="has no store"):
        asyncio.run(plugin.turn_authorize(TurnInfo("t", "s", 1, "user", "u1")))


# ------------------------------------------------------------------ settings


def test_settings_default_to_both_buckets_and_the_agents_own_work_exempt(
    turnkit_agent: AgentHarness, clock: Clock
) -> None:
    plugin = limited(turnkit_agent, clock)
    turnkit_agent.start()
    assert plugin.settings.per_principal == Limit(capacity=10, refill_per_second=0.2)
    assert plugin.settings.per_session == Limit(capacity=10, refill_per_second=0.2)
    assert plugin.settings.exempt_initiators == ["system", "extension"]
    assert statuses(turnkit_agent, ["u1"] * 11) == ["completed"] * 10 + ["denied"]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        pytest.param(
            {"per_principal": {"capacity": 0}},
            "capacity must be at least 1, got 0 @ $.plugin.ratelimit.per_principal",
            id="capacity",
        ),
        pytest.param(
            {"per_session": {"refill_per_second": -1}},
            "refill_per_second must be a positive number, got -1.0 @ $.plugin.ratelimit.per_session",
            id="refill",
        ),
        pytest.param(
            {"per_session": {"capacity": "5"}},
            "expected int, got str '5' @ $.plugin.ratelimit.per_session.capacity",
            id="type",
        ),
        pytest.param(
            {"per_principle": {"capacity": 5}},
            "extra fields found (per_principle) @ $.plugin.ratelimit",
            id="misspelt-key",
        ),
        pytest.param(
            {"exempt_initiators": ["task"]},
            "expected one of 'user', 'extension', 'system', 'agent'"
            " @ $.plugin.ratelimit.exempt_initiators[0]",
            id="initiator",
        ),
    ],
)
def test_bad_settings_stop_the_start_naming_the_key_path(
    turnkit_agent: AgentHarness, clock: Clock, settings: dict[str, Any], problem: str
) -> None:
    limited(turnkit_agent, clock, **settings)
    with pytest.raises(ConfigError) as raised:
        turnkit_agent.start()
    assert problem in str(raised.value)


# ------------------------------------------------------------------ the arithmetic


LIMIT = Limit(capacity=4, refill_per_second=0.5)


def test_a_bucket_refills_up_to_its_capacity() -> None:
    bucket = Bucket(tokens=1.0, stamp=100.0)
    assert bucket.level(LIMIT, 100.0) == 1.0
    assert bucket.level(LIMIT, 102.0) == 2.0
    assert bucket.level(LIMIT, 1_000.0) == 4.0
    assert Bucket.full(LIMIT, 5.0) == Bucket(4.0, 5.0)


def test_clock_skew_mints_no_tokens() -> None:
    ahead = Bucket(tokens=1.0, stamp=200.0)  # written by a process whose clock is ahead
    assert ahead.level(LIMIT, 150.0) == 1.0
    taken = ahead.changed(LIMIT, 150.0, -1)
    assert taken == Bucket(0.0, 200.0)  # keeps the later stamp: no refill until 200
    assert taken.level(LIMIT, 202.0) == 1.0


def test_giving_back_stays_within_the_capacity() -> None:
    assert Bucket(4.0, 0.0).changed(LIMIT, 1.0, +1) == Bucket(4.0, 1.0)


def test_retry_after_and_its_wording() -> None:
    assert retry_after(0.0, LIMIT) == 2.0
    assert retry_after(0.75, LIMIT) == 0.5
    assert [seconds_text(s) for s in (2.0, 1.96, 0.5, 0.01, 12.34)] == ["2", "2", "0.5", "0.1", "12.4"]


@pytest.mark.parametrize(
    "value", [{}, {"tokens": 1.0}, {"tokens": "1", "stamp": 0.0}, {"tokens": True, "stamp": 0.0}]
)
def test_a_stored_bucket_must_hold_two_numbers(value: dict[str, Any]) -> None:
    with pytest.raises(BucketStateError, match="bucket 'session:s' holds"):
        Bucket.from_value("session:s", value)


# ------------------------------------------------------------------ packaging


def test_the_entry_point_names_the_plugin_class() -> None:
    assert declared_entry_point().value == "turnkit_ratelimit:RateLimitPlugin"
    assert declared_entry_point().load() is RateLimitPlugin


def test_the_installed_entry_point_is_the_declared_one() -> None:
    try:
        distribution("turnkit-ratelimit")
    except PackageNotFoundError:
        pytest.skip("turnkit-ratelimit is not installed (tests run from the source tree)")
    [installed] = entry_points(group=GROUP, name=NAME)
    assert installed.value == declared_entry_point().value
    assert installed.dist is not None and installed.dist.name == "turnkit-ratelimit"
