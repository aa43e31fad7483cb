"""Processes sharing one store leave each other's turns alone, and queue behind each other in FIFO order.

Each test holds a turn open in a ``turnkit serve`` worker (the fixture
model's gate) while other processes act on the same store, then opens the
gate and checks what every caller got and what the store holds: a live
process's turn is never taken over however long it runs (the gated turn
outlasts the 2 s lease), each turn ran once, and a caller whose turn another
process ran still gets its answer.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor

from .support import HEARTBEAT, LEASE, Cluster, Reply, once_each, task_table, tracebacks, wait_until


def test_commands_run_while_serve_runs_a_turn_leave_it_alone(cluster: Cluster) -> None:
    """Reproduction A: ``turnkit send`` (another session), ``turnkit task list`` and ``turnkit task run``
    start and end while ``turnkit serve`` runs a turn; that turn completes as if they never ran.

    ``send`` and ``task run`` each run a turn of their own (so they take a lease
    and look for turns to take over); ``task list`` runs none (so it takes no
    lease at all). None of them may interrupt the serving process's turn.
    """
    cluster.configure(tasks=task_table("tidy", "Tidy up."))
    [server] = cluster.serve("serve")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(server.post_chat, "alice", "gate=a hello")
        [asked] = cluster.wait_asked("gate=a hello")
        assert asked.pid == server.pid
        commands = {
            "send": cluster.start("send", "x", "--session", "other", "--json"),
            "list": cluster.start("task", "list"),
            "run": cluster.start("task", "run", "--name", "tidy"),
        }
        results = {name: cluster.finish(process) for name, process in commands.items()}
        for result in results.values():
            assert result.returncode == 0, str(result)
        time.sleep(max(0.0, asked.time + LEASE + 2 * HEARTBEAT - time.time()))  # outlast the lease
        during = cluster.store.snapshot()
        [running] = during.sessions[asked.session].turns
        assert running.status == "running", "the serving turn still runs after every command ended"
        assert not held.done()
        cluster.open_gate("a")
        reply = held.result(timeout=30)

    assert reply.status_code == 200 and reply.text == "re: gate=a hello", reply
    assert json.loads(results["send"].stdout)["reply"]["blocks"][0]["text"] == "re: x"
    assert [task["name"] for task in json.loads(results["list"].stdout)] == ["tidy"]
    run = json.loads(results["run"].stdout)
    assert (run["status"], run["reply"]) == ("completed", "re: Tidy up.")

    snapshot = cluster.wait_quiet()
    assert [t.status for t in snapshot.turns()].count("completed") == len(snapshot.turns()) == 3
    assert not [e for s in snapshot.sessions.values() for e in s.audit if e.action == "lease_taken_over"]
    served = snapshot.sessions[asked.session]
    assert served.history == [("user", "gate=a hello"), ("assistant", "re: gate=a hello")]
    assert [m.message.author for m in served.messages][1] == f"pid:{server.pid}"
    assert [line.text for line in cluster.asked()].count("gate=a hello") == 1, "the model was asked once"
    assert len(cluster.asked()) == 3 == len(cluster.asked("answered"))
    assert {line.pid for line in cluster.asked()} == {
        server.pid,
        commands["send"].pid,
        commands["run"].pid,
    }, "each command ran its own turn"
    owners = {turn.owner for turn in snapshot.turns()}
    assert None not in owners and len(owners) == 3, "each turn ran under its own process's lease"
    # A clean stop deletes a lease that holds no turn: the commands' leases are gone, serve's stays.
    assert {owner.pid for owner in snapshot.owners} == {server.pid}
    assert not tracebacks([server]), cluster.logs()


def test_a_second_worker_answers_a_message_queued_behind_the_firsts_turn(cluster: Cluster) -> None:
    """Reproduction B: two workers; a turn of session S runs on A, a message to S is posted to B.

    B's caller waits (one turn at a time per session), then gets its own
    reply, numbered after A's turn; each turn ran once, in order.
    """
    a, b = cluster.serve("a", "b")
    session = a.new_session("s")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(a.post_session, session, "gate=b one")
        [asked] = cluster.wait_asked("gate=b one")
        second = pool.submit(b.post_session, session, "two")

        def queued() -> bool:
            return cluster.store.session(session).statuses() == ["running", "queued"]

        wait_until(queued, "B's message to be queued behind A's turn")
        # A's turn outlasts the lease, B sweeping every heartbeat meanwhile: it must stay A's
        time.sleep(max(0.0, asked.time + LEASE + 2 * HEARTBEAT - time.time()))
        during = cluster.store.session(session)
        assert during.statuses() == ["running", "queued"] and not during.audit, during
        assert not second.done(), "B's caller waits for its turn"
        cluster.open_gate("b")
        one, two = first.result(timeout=30), second.result(timeout=30)

    assert (one.status_code, one.number, one.text) == (200, 1, "re: gate=b one")
    assert (two.status_code, two.number, two.text) == (200, 2, "re: two")
    state = cluster.wait_quiet().sessions[session]
    assert state.statuses() == ["completed", "completed"]
    assert state.history == [
        ("user", "gate=b one"),
        ("assistant", "re: gate=b one"),
        ("user", "two"),
        ("assistant", "re: two"),
    ]
    asks, answers = cluster.asked(), cluster.asked("answered")
    assert [line.text for line in asks] == ["gate=b one", "two"], "each turn ran once, in order"
    assert asks[1].time >= answers[0].time, "the second turn started after the first ended"
    assert {line.pid for line in asks} <= {a.pid, b.pid}
    assert not tracebacks([a, b]), cluster.logs()


def test_send_in_the_session_serve_runs_a_turn_of_answers_after_it(cluster: Cluster) -> None:
    """``turnkit send --session S`` while ``turnkit serve`` runs a turn of S: queued, then answered once.

    Whichever process runs it, the ``send`` process prints the reply of its
    own turn, the second of the session.
    """
    [server] = cluster.serve("serve")
    session = server.new_session("s")
    with ThreadPoolExecutor(1) as pool:
        held: Future[Reply] = pool.submit(server.post_session, session, "gate=c first")
        cluster.wait_asked("gate=c first")
        send = cluster.start("send", "after", "--session", session, "--json")

        def queued() -> bool:
            return cluster.store.session(session).statuses() == ["running", "queued"]

        wait_until(queued, "the sent message to be queued behind the serving turn")
        assert send.poll() is None, "send waits for its turn"
        cluster.open_gate("c")
        reply = held.result(timeout=30)
        result = cluster.finish(send)

    assert result.returncode == 0, str(result)
    sent = json.loads(result.stdout)
    assert (sent["turn"]["number"], sent["reply"]["blocks"][0]["text"]) == (2, "re: after")
    assert (reply.number, reply.text) == (1, "re: gate=c first")
    state = cluster.wait_quiet().sessions[session]
    assert state.statuses() == ["completed", "completed"]
    assert not once_each(state) and [text for _, text in state.history][::2] == ["gate=c first", "after"]
    assert [line.text for line in cluster.asked()] == ["gate=c first", "after"], "asked once each"
    assert not tracebacks([server]), cluster.logs()
