"""A worker dies or freezes mid-turn: its turns are taken over and re-run once, nothing runs twice.

Two ways a worker stops holding its lease:

* **SIGKILL** under load: its pid is gone, so the others' sweeps end its
  lease at once (same host) and re-run its running turns; its clients'
  connections break and they go to another worker.
* **SIGSTOP**: the process still exists (its pid proves nothing), so only
  the lease running out (2 s here) lets another worker take its turn over;
  when it is thawed it must not record its late result.

Either way the store must end with every accepted message answered by
exactly one completed turn, in FIFO order per session.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx
import pytest

from .support import (
    LEASE,
    WAIT,
    Cluster,
    Reply,
    Snapshot,
    Worker,
    once_each,
    ran_once,
    tracebacks,
    turns_of_messages,
    wait_until,
)

#: The load: SESSIONS chats, PER_SESSION messages each, sent by THREADS client threads.
SESSIONS = 50
PER_SESSION = 4
THREADS = 24
#: Answers received before the kill: well into the load, with most of it still to come.
KILL_AFTER = 50


@dataclass
class Sent:
    """One message of the load and what became of each attempt to send it."""

    chat: str
    lane: int
    index: int
    text: str
    key: str
    #: Successful answers: (worker, reply).
    replies: list[tuple[str, Reply]] = field(default_factory=list)
    #: Attempts whose connection broke after the request went out: (worker, error).
    broken: list[tuple[str, str]] = field(default_factory=list)
    #: Attempts refused before anything was sent (the worker was dead): worker names.
    refused: list[str] = field(default_factory=list)


class Load:
    """Lanes of messages, each lane sent one message after another, lanes concurrently.

    Even chats get one lane of PER_SESSION messages, odd chats two lanes of
    half as many, so that some messages of a session queue behind others.
    Message ``k`` of a lane goes to worker ``(chat + lane + k) % 3``, so a
    session's turns are accepted by every worker in turn; a worker known to
    be dead (a client's connection to it broke or was refused) is skipped.
    """

    def __init__(self, workers: list[Worker], seed: int = 7) -> None:
        self.workers = workers
        self.dead: set[str] = set()
        self.answered = 0
        self._lock = threading.Lock()
        rng = random.Random(seed)
        self.lanes: list[list[Sent]] = []
        for chat in range(SESSIONS):
            lanes = 1 if chat % 2 == 0 else 2
            for lane in range(lanes):
                count = PER_SESSION // lanes
                self.lanes.append(
                    [
                        Sent(
                            f"c{chat:02d}",
                            lane,
                            k,
                            f"slow={rng.uniform(0.05, 0.25):.2f} c{chat:02d} lane{lane} m{k}",
                            f"key-c{chat:02d}-{lane}-{k}",
                        )
                        for k in range(count)
                    ]
                )
        self.clients = {
            w.name: httpx.Client(limits=httpx.Limits(max_connections=THREADS), timeout=WAIT) for w in workers
        }

    @property
    def messages(self) -> list[Sent]:
        """Every message of the load."""
        return [sent for lane in self.lanes for sent in lane]

    def _target(self, sent: Sent, attempt: int) -> Worker:
        start = int(sent.chat[1:]) + sent.lane + sent.index + attempt
        alive = [w for w in self.workers if w.name not in self.dead] or self.workers
        return alive[start % len(alive)]

    def send(self, sent: Sent) -> None:
        """Send one message; when its worker dies, send it again to another with the same key.

        A refused connection sent nothing; a broken one may have been
        accepted (and even run): the ``Idempotency-Key`` makes the retry
        answer with that turn instead of running a second one.
        """
        headers = {"Idempotency-Key": sent.key}
        for attempt in range(len(self.workers) + 1):
            worker = self._target(sent, attempt)
            try:
                reply = worker.post_chat(
                    sent.chat, sent.text, headers=headers, client=self.clients[worker.name]
                )
            except httpx.ConnectError:  # nothing was sent: safe to send it elsewhere
                sent.refused.append(worker.name)
                self.dead.add(worker.name)
                continue
            except httpx.TransportError as exc:  # sent, then the connection broke: maybe accepted
                sent.broken.append((worker.name, repr(exc)))
                self.dead.add(worker.name)
                continue
            sent.replies.append((worker.name, reply))
            with self._lock:
                self.answered += 1
            return

    def run_lane(self, lane: list[Sent]) -> None:
        """The messages of one lane, one after another."""
        for sent in lane:
            self.send(sent)

    def close(self) -> None:
        """Close the HTTP clients."""
        for client in self.clients.values():
            client.close()


def open_asks(cluster: Cluster, pid: int) -> set[str]:
    """The turns the model is answering right now in process ``pid`` (asked, not yet answered)."""
    asked = {line.turn for line in cluster.asked() if line.pid == pid}
    return asked - {line.turn for line in cluster.asked("answered") if line.pid == pid}


def busy_on(cluster: Cluster, pid: int, least: int) -> set[str] | None:
    """The turns open in ``pid`` when there are at least ``least`` of them, else ``None``."""
    found = open_asks(cluster, pid)
    return found if len(found) >= least else None


def owner_pids(snapshot: Snapshot) -> dict[str, int]:
    """Lease owner id → pid."""
    return {owner.id: owner.pid for owner in snapshot.owners}


def test_a_worker_killed_under_load_loses_nothing_and_doubles_nothing(cluster: Cluster) -> None:
    """SIGKILL one of three workers while 200 messages to 50 chats are in flight.

    Its running turns are interrupted and each re-run once by a survivor;
    every message a client got an answer for, and every message the store
    accepted, ran to exactly one completed turn, each session's history is
    its messages in turn order, each answered once; every request to a
    surviving worker was answered.
    """
    workers = cluster.serve("w0", "w1", "w2")
    victim, survivors = workers[1], [workers[0], workers[2]]
    load = Load(workers)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            lanes = [pool.submit(load.run_lane, lane) for lane in load.lanes]
            wait_until(lambda: load.answered >= KILL_AFTER, f"{KILL_AFTER} answers before the kill")
            busy = wait_until(lambda: busy_on(cluster, victim.pid, 2), "turns running on the victim")
            victim.kill()  # the clients are not told: they find out when their connections fail
            cut = open_asks(cluster, victim.pid)  # asked and never answered: the kill cut them
            killed_at = time.monotonic() - started
            done, pending = wait(lanes, timeout=60)
            assert not pending, f"{len(pending)} lanes still sending after 60s\n{cluster.logs()}"
            for future in done:
                future.result()
        snapshot = cluster.wait_quiet()
    finally:
        load.close()
    elapsed = time.monotonic() - started

    pids = owner_pids(snapshot)
    chats = snapshot.of_kind("chat")
    turns = [turn for state in chats.values() for turn in state.turns]
    interrupted = [turn for turn in turns if turn.status == "interrupted"]
    # the victim was mid-turn, and exactly those turns were taken over (none of a survivor)
    assert interrupted and cut, f"the kill interrupted nothing (open asks were {busy})"
    assert {pids[turn.owner or ""] for turn in interrupted} == {victim.pid}
    assert cut <= {turn.turn_id for turn in interrupted}, "every turn the kill cut was interrupted"
    takeovers = [e for state in chats.values() for e in state.audit if e.action == "lease_taken_over"]
    assert sorted(e.detail["turn"] for e in takeovers) == sorted(t.turn_id for t in interrupted)
    assert {pids[e.detail["by"]] for e in takeovers} <= {w.pid for w in survivors}

    # every request to a survivor was answered, with the reply to its own message
    for sent in load.messages:
        assert not [b for b in sent.broken if b[0] != victim.name], sent
        for name, reply in sent.replies:
            assert (reply.status_code, reply.text) == (200, f"re: {sent.text}"), (name, sent)
        assert len({reply.turn_id for _, reply in sent.replies}) <= 1, f"one key, two turns: {sent}"
    unanswered = [sent for sent in load.messages if not sent.replies]
    assert not unanswered, "a retry with the key answers every message"
    retried = [sent for sent in load.messages if sent.broken]
    assert retried, "the kill broke no request"
    for sent in retried:  # once more, with the same key: the same turn answers, nothing new runs
        [(_, first)] = sent.replies
        again = survivors[0].post_chat(sent.chat, sent.text, headers={"Idempotency-Key": sent.key})
        assert (again.status_code, again.turn_id, again.text) == (200, first.turn_id, first.text), sent
    after = cluster.store.snapshot()
    assert sorted(map(repr, after.turns())) == sorted(map(repr, snapshot.turns())), "a repeated key ran"

    # the store: each accepted message once, answered once, in FIFO order per session
    stored: Counter[str] = Counter()
    for session_id, state in chats.items():
        assert not once_each(state), (session_id, once_each(state), state.history)
        for message_id, runs in turns_of_messages(state).items():
            assert ran_once(runs), (session_id, message_id, runs)
        firsts = [turn for turn in state.turns if turn.rerun_of is None]
        by_number = [turn.message_id for turn in sorted(firsts, key=lambda t: t.number)]
        in_history = [m.id for m in state.messages if m.message.role == "user"]
        assert by_number == in_history, f"{session_id}: turns ran out of acceptance order"
        for message in state.messages:
            if message.message.role == "user":
                stored[message.message.text] += 1
    assert not [text for text, count in stored.items() if count > 1], "a message stored twice"
    assert set(stored) == {sent.text for sent in load.messages}, "every message stored"
    # a chat's messages all went to its one session, whichever worker took them
    sessions_of_chat: dict[str, set[str]] = {}
    for session_id, state in chats.items():
        for role, text in state.history:
            if role == "user":
                sessions_of_chat.setdefault(text.split()[1], set()).add(session_id)
    assert all(len(found) == 1 for found in sessions_of_chat.values()), sessions_of_chat
    # per lane, the client's order is the history's order
    position = {
        m.message.text: (sid, m.id)
        for sid, state in chats.items()
        for m in state.messages
        if m.message.role == "user"
    }
    for lane in load.lanes:
        places = [position[sent.text] for sent in lane if sent.text in position]
        assert places == sorted(places), f"lane {lane[0].chat}/{lane[0].lane} out of order: {places}"
    # the model: asked once per message, twice for a message whose first turn the kill interrupted
    asks = Counter(line.text for line in cluster.asked())
    twice = {text for text, count in asks.items() if count > 1}
    assert all(count <= 2 for count in asks.values()), asks.most_common(3)
    texts = {m.id: m.message.text for state in chats.values() for m in state.messages}
    assert twice <= {texts[turn.message_id or 0] for turn in interrupted}
    assert not tracebacks(survivors), cluster.logs()
    print(
        f"\n{len(load.messages)} messages in {elapsed:.1f}s; killed {victim.name} at {killed_at:.1f}s"
        f" with {len(busy)} turns open; {len(interrupted)} interrupted and re-run;"
        f" {len(retried)} requests broken by the kill and retried,"
        f" {len(unanswered)} left unanswered; {sum(len(s.refused) for s in load.messages)} refused"
        " connections went elsewhere"
    )


def test_a_frozen_workers_turn_is_taken_over_when_its_lease_ends_and_its_late_result_refused(
    cluster: Cluster,
) -> None:
    """SIGSTOP a worker mid-turn: its pid lives, so only the lease ending lets the other worker in.

    The other worker takes the turn over no sooner than the lease allows and
    re-runs it; the frozen worker, thawed while the re-run still runs,
    takes a new lease, finishes its copy late, and is refused: the store
    keeps one answer. Its waiting client still gets that answer (the
    re-run's), and it goes on serving.
    """
    a, b = cluster.serve("a", "b")
    session = a.new_session("f")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(a.post_session, session, "gate=f held", timeout=60)
        [first] = cluster.wait_asked("gate=f held")
        assert first.pid == a.pid
        a.freeze()
        frozen_at = time.time()

        def taken_over() -> bool:
            state = cluster.store.session(session)
            return state.statuses() == ["interrupted", "running"] and len(cluster.asked()) == 2

        wait_until(taken_over, "the other worker to take the frozen worker's turn over")
        snapshot = cluster.store.snapshot()
        state = snapshot.sessions[session]
        [event] = state.audit
        pids = owner_pids(snapshot)
        assert event.action == "lease_taken_over" and pids[event.detail["by"]] == b.pid
        [lease] = [owner for owner in snapshot.owners if owner.pid == a.pid]
        assert not lease.live and lease.expires_at <= event.at, "taken over once the lease had run out"
        # not at once, as for a dead pid: a live process's lease has to run out first
        assert event.at >= frozen_at + LEASE / 2, f"taken over {event.at - frozen_at:.1f}s after the freeze"
        original, rerun = state.turns
        assert rerun.rerun_of == original.turn_id and cluster.asked()[1].pid == b.pid

        a.thaw()  # late: its lease has run out, its turn is another's now

        def relet() -> bool:
            return any(o.pid == a.pid and o.live for o in cluster.store.snapshot().owners)

        wait_until(relet, "the thawed worker to take a new lease")
        assert cluster.store.session(session).statuses() == ["interrupted", "running"]
        cluster.open_gate("f")  # both copies answer now: the late one and the re-run
        reply = held.result(timeout=30)
        wait_until(lambda: len(cluster.asked("answered")) == 2, "both copies of the turn to answer")

    assert (reply.status_code, reply.text) == (200, "re: gate=f held"), reply
    assert (reply.turn_id, reply.number) == (rerun.turn_id, 2), "the client hears the re-run's answer"
    state = cluster.wait_quiet().sessions[session]
    assert state.statuses() == ["interrupted", "completed"]
    assert state.history == [("user", "gate=f held"), ("assistant", "re: gate=f held")], "answered once"
    assert state.messages[1].message.author == f"pid:{b.pid}", "the re-run's answer, not the late one"
    assert "could not be finished" in a.output()
    after = a.post_session(session, "after")
    assert (after.status_code, after.number, after.text) == (200, 3, "re: after"), "a goes on serving"
    assert not tracebacks([b]), cluster.logs()


def test_a_retry_with_the_key_on_another_worker_answers_with_the_killed_workers_turn(
    cluster: Cluster,
) -> None:
    """The client of a killed worker retries on another with the same ``Idempotency-Key``.

    The killed worker had accepted the message and was running it: the
    retry stores nothing new and answers with the re-run of that turn.
    """
    a, b = cluster.serve("a", "b")
    session = a.new_session("k")
    headers = {"Idempotency-Key": "retry-1"}
    with ThreadPoolExecutor(1) as pool:
        lost = pool.submit(a.post_session, session, "gate=k once", headers=headers)
        cluster.wait_asked("gate=k once")
        a.kill()
        with pytest.raises(httpx.TransportError):
            lost.result(timeout=30)
    cluster.open_gate("k")
    retry = b.post_session(session, "gate=k once", headers=headers)
    assert (retry.status_code, retry.text) == (200, "re: gate=k once")
    state = cluster.wait_quiet().sessions[session]
    assert state.statuses() == ["interrupted", "completed"] and retry.turn_id == state.turns[1].turn_id
    assert state.history == [("user", "gate=k once"), ("assistant", "re: gate=k once")]
    again = b.post_session(session, "gate=k once", headers=headers)
    assert again.turn_id == retry.turn_id and len(cluster.store.session(session).turns) == 2
