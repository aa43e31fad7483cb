"""Several workers, one bot: the lease that lets exactly one of them poll ``getUpdates``.

The unit tests race :class:`~turnkit_services.leader.LeaderLease` objects on
one real storage (SQLite), with a clock the test moves. The end-to-end tests
run two agents (two workers) on ONE SQLite file, each with its own chat
service and Telegram channel, against the loopback Bot API server of
``telegram_fake``. Which worker calls what is recorded on the client side
(:class:`Calls` wraps ``TelegramChannel._call``): the fake cannot tell the
two apart, they share the token and the agent id.

A worker that stops cleanly is ``request_stop`` and leaving ``async with``;
one that dies is the same with the lease's release made a no-op, so that
its lease is left to expire, as a killed process leaves it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from turnkit.agent import Agent
from turnkit.errors import ConfigError
from turnkit_hookspecs import ChannelMessage, Message, Storage, StoredRecord, hookimpl
from turnkit_services.chat import ChatService
from turnkit_services.chat.telegram import CALL_TIMEOUT, LEASES, PENDING, TelegramChannel
from turnkit_services.leader import LeaderLease

from tests.chat.telegram_fake import FakeTelegram
from tests.chat.test_telegram import chat_table, serving
from tests.support.agents import build_agent, eventually, running_agent, texts

TTL = 1.0


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


# ---------------------------------------------------------------- the lease on its own


class Clock:
    """A UNIX clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Racing:
    """A storage whose reads wait until ``readers`` of them are in: racers all read before anyone writes."""

    def __init__(self, storage: Storage, readers: int) -> None:
        self._storage = storage
        self._readers = readers
        self._arrived = 0
        self._all_in = asyncio.Event()

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        record = await self._storage.get(collection, key)
        self._arrived += 1
        if self._arrived >= self._readers:
            self._all_in.set()
        await self._all_in.wait()
        return record

    async def put(self, collection: str, key: str, value: Mapping[str, Any], **options: Any) -> StoredRecord:
        return await self._storage.put(collection, key, value, **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The workers' ``[store]`` table: a SQLite file of the test's (the default), or PostgreSQL."""
    if request.param == "postgresql":
        return {"url": request.getfixturevalue("postgres_url")}
    return {}


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    async with running_agent(tmp_path) as agent:
        yield agent.context.storage("chat")


async def test_of_two_leases_racing_for_a_free_key_exactly_one_wins(storage: Storage) -> None:
    racing: Any = Racing(storage, readers=2)
    clock = Clock()
    a, b = (LeaderLease(racing, "poller", ttl=TTL, clock=clock) for _ in range(2))

    won = await asyncio.gather(a.acquire(), b.acquire())

    assert sorted(won) == [False, True], "both read 'absent'; the compare-and-set lets one write"
    winner, loser = (a, b) if won[0] else (b, a)
    assert (winner.held, loser.held) == (True, False)
    record = await storage.get("leases", "poller")
    assert record is not None and record.value == {"owner": winner.owner, "expires": clock.now + TTL}
    assert not await loser.acquire(), "a live lease is not taken"
    assert await loser.holder() == winner.owner


async def test_of_two_leases_racing_for_an_expired_one_exactly_one_wins(storage: Storage) -> None:
    clock = Clock()
    dead = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    assert await dead.acquire()
    clock.now += TTL + 0.01
    racing: Any = Racing(storage, readers=2)
    a, b = (LeaderLease(racing, "poller", ttl=TTL, clock=clock) for _ in range(2))

    won = await asyncio.gather(a.acquire(), b.acquire())

    assert sorted(won) == [False, True]
    assert await dead.holder() == (a if won[0] else b).owner


async def test_an_expired_lease_passes_to_another_and_the_old_holder_cannot_renew_it(
    storage: Storage,
) -> None:
    clock = Clock()
    old = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    new = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    assert old.renew_every == pytest.approx(TTL / 3)
    assert await old.acquire()

    clock.now += TTL / 2
    assert await old.renew(), "renewed while ours"
    clock.now += TTL / 2
    assert not await new.acquire(), "the renewal pushed the expiry on"
    assert old.held and old.remaining == pytest.approx(TTL / 2)

    clock.now += TTL  # the holder stopped renewing (it died, or hung)
    assert not old.held
    assert await new.acquire()
    assert not await old.renew(), "lost: another took it"
    assert (old.held, old.expires) == (False, None)
    assert not await old.release(), "releasing a lost lease leaves the new holder's alone"
    assert await new.renew() and await new.holder() == new.owner


async def test_an_expired_lease_nobody_took_is_still_ours_to_renew(storage: Storage) -> None:
    clock = Clock()
    lease = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    assert await lease.acquire()
    clock.now += 5 * TTL
    assert await lease.renew()
    assert await lease.acquire(), "acquiring a lease we hold renews it"
    assert lease.remaining == pytest.approx(TTL)


async def test_a_released_lease_is_taken_at_once_and_never_by_a_stale_compare_and_set(
    storage: Storage,
) -> None:
    clock = Clock()
    first = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    second = LeaderLease(storage, "poller", ttl=TTL, clock=clock)
    assert await first.acquire()
    before = await storage.get("leases", "poller")

    assert await first.release()
    assert not first.held and await first.holder() is None
    assert await second.acquire(), "no need to wait for the expiry"

    after = await storage.get("leases", "poller")
    assert before is not None and after is not None
    assert after.version > before.version, "release overwrites, so versions only grow (no ABA)"
    assert not await first.release()
    assert await second.holder() == second.owner


def test_a_lease_refuses_a_ttl_or_renewal_interval_that_cannot_work() -> None:
    storage: Any = object()
    with pytest.raises(ValueError, match="ttl must be positive"):
        LeaderLease(storage, "k", ttl=0)
    with pytest.raises(ValueError, match="renew_every must be positive and below the ttl"):
        LeaderLease(storage, "k", ttl=1, renew_every=1)
    assert LeaderLease(storage, "k").ttl == 10.0
    assert LeaderLease(storage, "k").owner != LeaderLease(storage, "k").owner


async def test_leader_ttl_must_be_positive(tmp_path: Path) -> None:
    table = {"chat": {"telegram": {"leader_ttl": 0}}}
    problem = re.escape("'leader_ttl' must be > 0: 0") + r".*@ \$\.service\.chat\.telegram"
    with pytest.raises(ConfigError, match=problem):
        async with running_agent(tmp_path, services=[ChatService()], service=table):
            pass


# ---------------------------------------------------------------- two workers, one bot


@attrs.define
class Call:
    """One ``TelegramChannel._call`` as the client saw it (``ended`` is ``None`` while in flight)."""

    channel: TelegramChannel
    method: str
    params: dict[str, Any]
    started: float
    ended: float | None = None
    cancelled: bool = False


class Calls:
    """Every Bot API call of every channel in the test, with when it started and ended."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Call] = []
        original = TelegramChannel._call
        calls = self

        async def call(
            channel: TelegramChannel,
            method: str,
            params: Mapping[str, Any] | None = None,
            *,
            timeout: float = CALL_TIMEOUT,
        ) -> Any:
            loop = asyncio.get_running_loop()
            entry = Call(channel, method, dict(params or {}), loop.time())
            calls.calls.append(entry)
            try:
                return await original(channel, method, params, timeout=timeout)
            except asyncio.CancelledError:
                entry.cancelled = True
                raise
            finally:
                entry.ended = loop.time()

        monkeypatch.setattr(TelegramChannel, "_call", call)

    def of(self, method: str, channel: TelegramChannel | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and channel in (None, c.channel)]

    def most_polls_at_once(self) -> int:
        """The most ``getUpdates`` calls ever in flight together (from the clients' side)."""
        events = sorted(
            [(c.started, 1) for c in self.of("getUpdates")]
            + [(c.ended, -1) for c in self.of("getUpdates") if c.ended is not None],
            key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
        )
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def sent(self, channel: TelegramChannel) -> list[str]:
        return [c.params["text"] for c in self.of("sendMessage", channel)]


class Gate:
    """Holds every message at one chat point (``chat_inbound`` or ``chat_outbound``) while closed."""

    def __init__(self, point: str = "chat_inbound", *, closed: bool = True) -> None:
        self.point = point
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.cancelled = 0
        if not closed:
            self.opened.set()

    async def _hold(self) -> None:
        self.entered.set()
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    @hookimpl
    async def chat_inbound(self, inbound: ChannelMessage) -> None:
        if self.point == "chat_inbound":
            await self._hold()

    @hookimpl
    async def chat_outbound(self, reply: Message) -> None:
        if self.point == "chat_outbound":
            await self._hold()


@attrs.define
class Worker:
    """One ``turnkit serve`` process: an agent serving a chat service with the Telegram channel."""

    name: str
    agent: Agent
    chat: ChatService
    gate: Gate
    serving: AsyncExitStack | None = None
    _channel: TelegramChannel | None = None

    @property
    def channel(self) -> TelegramChannel:
        """The worker's Telegram channel (kept once seen: the chat service forgets it at stop)."""
        if self._channel is None:
            channel = self.chat.channels["telegram"]
            assert isinstance(channel, TelegramChannel)
            self._channel = channel
        return self._channel

    @property
    def lease(self) -> LeaderLease:
        lease = self.channel.lease
        assert lease is not None
        return lease

    @property
    def leads(self) -> bool:
        if "telegram" not in self.chat.channels:
            return False
        return self.channel.lease is not None and self.channel._leading

    async def stop(self, *, release: bool = True) -> None:
        """Stop serving and stop the agent; ``release=False`` leaves the lease behind, as a crash does."""
        if not release:

            async def keep() -> bool:
                return False

            self.lease.release = keep  # type: ignore[method-assign]
        assert self.serving is not None
        await self.serving.aclose()
        self.serving = None


@asynccontextmanager
async def workers(
    tmp_path: Path,
    fake: FakeTelegram,
    gates: Sequence[Gate] = (),
    ttl: float = TTL,
    store: Mapping[str, Any] | None = None,
    **telegram: Any,
) -> AsyncIterator[list[Worker]]:
    """Two workers on one store (``tmp_path / "t.db"``, or ``store``'s), both serving; stopped
    when the block ends.

    ``telegram`` overrides settings of ``[service.chat.telegram]``.
    """
    made = []
    for index, name in enumerate(("w1", "w2")):
        chat = ChatService()
        gate = gates[index] if gates else Gate(closed=False)
        table = chat_table(fake.base_url, fake.token, leader_ttl=ttl, **telegram)
        agent = build_agent(
            tmp_path,
            services=[chat],
            plugins={"gate": gate},
            service=table,
            agent={"log_level": "INFO"},
            store=dict(store or {}),
        )
        made.append(Worker(name, agent, chat, gate))
    try:
        for worker in made:
            stack = AsyncExitStack()
            await stack.enter_async_context(worker.agent)
            await stack.enter_async_context(serving(worker.agent))
            worker.serving = stack
        yield made
    finally:
        for worker in made:
            if worker.serving is not None:
                await worker.serving.aclose()


async def leader_of(group: Sequence[Worker], timeout: float = 5.0) -> tuple[Worker, Worker]:
    """Wait until one worker leads; return it and the other."""

    async def one_leads() -> bool:
        return any(w.leads for w in group)

    await eventually(one_leads, timeout)
    (leader,) = [w for w in group if w.leads]
    (other,) = [w for w in group if w is not leader]
    return leader, other


async def until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait until ``check()`` holds; return how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def holds() -> bool:
        return check()

    await eventually(holds, timeout)
    return loop.time() - start


async def history_of(agent: Agent, chat_id: int = 42) -> list[tuple[str, str]]:
    (session,) = [
        s for s in await agent.sessions.list_sessions("chat") if s.metadata.get("chat_id") == str(chat_id)
    ]
    return texts(await agent.sessions.history(session.session_id))


async def nothing_pending(agent: Agent) -> Callable[[], Awaitable[bool]]:
    storage = agent.context.storage("chat")

    async def check() -> bool:
        return not await storage.list(PENDING)

    return check


async def test_of_two_workers_on_one_store_only_the_leader_polls_and_answers(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    calls = Calls(monkeypatch)
    async with workers(tmp_path, telegram) as group:
        leader, standby = await leader_of(group)
        for text in ("one", "two", "three"):
            telegram.message(text)
        await telegram.wait_sent(3)
        await asyncio.sleep(3 * leader.lease.renew_every)  # a few renewals and standby tries
        record = await leader.agent.context.storage("chat").get(
            LEASES, f"telegram-poller:{telegram.bot['id']}"
        )
        assert leader.leads and not standby.leads
        standby_polls = calls.of("getUpdates", standby.channel)
        leader_polls = calls.of("getUpdates", leader.channel)

    assert telegram.texts() == ["one", "two", "three"]
    assert calls.sent(leader.channel) == ["one", "two", "three"]
    assert calls.sent(standby.channel) == []
    assert standby_polls == [] and leader_polls, "the standby never polls"
    assert calls.most_polls_at_once() == 1
    assert len(calls.of("getMe")) == 2, "both know the bot"
    assert record is not None and record.value["owner"] == leader.lease.owner
    assert record.version > 2, "the leader renews"
    log = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert sum(f"worker {leader.lease.owner} leads bot @turnkit_test_bot" in m for m in log) == 1
    assert any(
        f"polled by worker {leader.lease.owner}; worker {standby.lease.owner} stands by" in m for m in log
    )


async def test_when_the_leader_stops_the_standby_takes_over_at_once_and_answers(
    tmp_path: Path,
    telegram: FakeTelegram,
    store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    calls = Calls(monkeypatch)
    # Standby tries every ttl/3 s; the lease could not expire before 2/3 ttl after the stop (the
    # last renewal came at most ttl/3 before it): a takeover sooner came from the release.
    ttl = 6.0
    async with workers(tmp_path, telegram, ttl=ttl, store=store) as group:
        leader, standby = await leader_of(group)
        telegram.message("before")
        await telegram.wait_sent(1)
        owner = leader.lease.owner

        await leader.stop()
        record = await standby.agent.context.storage("chat").get(
            LEASES, f"telegram-poller:{telegram.bot['id']}"
        )
        took = await until(lambda: standby.leads)
        telegram.message("after")
        await telegram.wait_sent(2)

    assert record is not None and record.value == {"owner": None, "expires": 0.0}, "released"
    assert took < 2 * ttl / 3, f"took over in {took:.2f}s, without waiting for the expiry"
    assert telegram.texts() == ["before", "after"]
    assert (calls.sent(leader.channel), calls.sent(standby.channel)) == (["before"], ["after"])
    assert calls.most_polls_at_once() == 1
    assert any(f"worker {owner} released the lease" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "point",
    [
        "chat_inbound",  # the leader dies before the message reaches the session
        "chat_outbound",  # the leader dies after the turn, before sending its reply
    ],
)
async def test_when_the_leader_dies_the_standby_takes_over_after_the_ttl_and_answers_each_update_once(
    tmp_path: Path, telegram: FakeTelegram, store: dict[str, Any], monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    calls = Calls(monkeypatch)
    gates = [Gate(point), Gate(point)]
    async with workers(tmp_path, telegram, gates, store=store) as group:
        leader, standby = await leader_of(group)
        standby.gate.opened.set()
        telegram.message("one")
        await leader.gate.entered.wait()  # the leader took "one" and is answering it

        loop = asyncio.get_running_loop()
        died = loop.time()
        await leader.stop(release=False)
        record = await standby.agent.context.storage("chat").get(
            LEASES, f"telegram-poller:{telegram.bot['id']}"
        )
        pending = await standby.agent.context.storage("chat").list(PENDING)
        telegram.message("two")
        await until(lambda: standby.leads)
        took = loop.time() - died
        await telegram.wait_sent(2)
        await eventually(await nothing_pending(standby.agent))
        history = await history_of(standby.agent)
        statuses = [
            t.status
            for s in await standby.agent.sessions.list_sessions()
            for t in await standby.agent.store.turns(s.session_id)
        ]

    assert record is not None and record.value["owner"] == leader.lease.owner, "not released"
    assert [r.value["update"]["message"]["text"] for r in pending] == ["one"]
    assert TTL - leader.lease.renew_every - 0.1 < took < TTL + leader.lease.renew_every + 0.5, took
    assert telegram.texts() == ["one", "two"], "each update answered exactly once"
    assert calls.sent(leader.channel) == [] and calls.sent(standby.channel) == ["one", "two"]
    assert history == [("user", "one"), ("assistant", "one"), ("user", "two"), ("assistant", "two")]
    assert statuses == ["completed", "completed"], "no message got a second turn"
    assert calls.most_polls_at_once() == 1


async def test_a_leader_that_loses_its_lease_stops_polling_and_answering_at_once(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    calls = Calls(monkeypatch)
    gates = [Gate(), Gate()]
    async with workers(tmp_path, telegram, gates, poll_timeout=5) as group:
        leader, standby = await leader_of(group)
        standby.gate.opened.set()
        telegram.message("one")
        await leader.gate.entered.wait()
        await until(lambda: calls.of("getUpdates", leader.channel)[-1].ended is None)

        # Another worker takes the lease over (as if the leader had hung past its expiry).
        storage = leader.agent.context.storage("chat")
        key = f"telegram-poller:{telegram.bot['id']}"
        record = await storage.get(LEASES, key)
        assert record is not None
        await storage.put(
            LEASES,
            key,
            {"owner": "intruder", "expires": record.value["expires"] + 0.5},
            expect=record.version,
        )
        polls = calls.of("getUpdates", leader.channel)
        stopped = await until(lambda: polls[-1].ended is not None and leader.gate.cancelled > 0)
        assert not leader.leads
        assert calls.of("getUpdates", leader.channel) == polls, "no poll after the loss"
        assert polls[-1].cancelled, "the long poll (5 s) was cut short"
        assert leader.gate.cancelled == 1, "the old leader stopped answering 'one'"

        # The intruder never polls: once its lease expires, a worker takes over and answers "one" once
        # (were the old leader still answering it, both would send the reply).
        await until(lambda: leader.leads or standby.leads)
        leader.gate.opened.set()
        telegram.message("two")
        await telegram.wait_sent(2)
        await asyncio.sleep(0.2)
        history = await history_of(leader.agent)

    assert stopped < leader.lease.renew_every + 0.3, f"stopped {stopped:.2f}s after losing the lease"
    assert telegram.texts() == ["one", "two"], "each update answered exactly once"
    assert history == [("user", "one"), ("assistant", "one"), ("user", "two"), ("assistant", "two")]
    assert calls.most_polls_at_once() == 1
    assert any(
        f"worker {leader.lease.owner} lost the lease of bot @turnkit_test_bot (another worker took it)"
        in r.getMessage()
        for r in caplog.records
    )
