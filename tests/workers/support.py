"""Real ``turnkit serve`` workers on one store, and what the worker tests read back from it.

Everything here is the real thing: worker processes started from the
``turnkit`` console script with a ``turnkit.toml`` naming the shared store
(a SQLite file or a PostgreSQL database), HTTP over loopback with httpx,
other ``turnkit`` commands as further processes, and the store read back
through the runtime's own :class:`~turnkit.store.Store` from the test
process. The only addition is the model: the ``turnkit-workers-slow``
fixture distribution (``slow_model/``, installed for real and put on the
workers' ``PYTHONPATH``), which holds a turn open on request and logs every
question it is asked, so that a test can act while a turn runs and count
how often the model was asked::

    cluster = Cluster(tmp_path, store_url, plugin_dir)
    a = cluster.serve("a")
    reply = a.post_chat("alice", "gate=g1 hello")   # blocks until cluster.open_gate("g1")

A cluster kills every process it started when it is closed (the fixture
does so in teardown), whatever state the test left them in.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from turnkit.config import StoreConfig
from turnkit.store import AuditEvent, OwnerRecord, SessionRecord, Store, StoredMessage, TurnRecord, make_store

from tests.support.dists import CliResult, subprocess_env, turnkit_command

T = TypeVar("T")

#: The fixture model's distribution (see ``slow_model/turnkit_workers_slow``).
SLOW_MODEL = Path(__file__).resolve().parent / "slow_model"
#: The variables the fixture model reads: its log file and the folder of its gates.
LOG_ENV = "WORKERS_MODEL_LOG"
GATES_ENV = "WORKERS_GATES"
#: The default bound of every wait: long enough for a loaded 2-core machine, short enough to fail fast.
WAIT = 30.0
#: How long a worker may take to start listening.
START_TIMEOUT = 30.0
_ANNOUNCED = re.compile(r"turnkit: HTTP API on (http://\S+)")
#: Short leases, so that a takeover happens within a test's patience (the defaults are 15 s and 3 s).
LEASE = 2.0
HEARTBEAT = 0.5


class Timeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and what was last seen."""


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = WAIT, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something other than ``None``/``False``; return that.

    Every wait in these tests is bounded: a hang fails with ``what`` instead
    of blocking the suite.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise Timeout(f"waited {timeout:.0f}s for {what}")
        time.sleep(interval)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    return json.dumps(text)


def config_text(url: str, *, tasks: str = "", claim_lease: float = 2.0) -> str:
    """A ``turnkit.toml`` for workers sharing the store ``url``.

    Short leases (``lease = 2``, ``heartbeat = 0.5``) so that a dead or
    frozen worker's turns are taken over within a second or two; a SQLite
    store runs its calls on a thread (``thread = true``: the setting for a
    file shared by several processes) and polls for other processes'
    commits every 20 ms. Every worker's HTTP channel takes a free port;
    the task scheduler looks for due runs every 0.1 s and leaves a claimed
    run to its claimer for ``claim_lease`` seconds.
    """
    sqlite = "" if url.startswith(("postgresql://", "postgres://")) else "thread = true\npoll = 0.02\n"
    return (
        f"[store]\nurl = {toml_string(url)}\nlease = {LEASE}\nheartbeat = {HEARTBEAT}\n{sqlite}\n"
        '[agent]\nlog_level = "INFO"\n\n'
        "[service.chat.http]\nport = 0\nshutdown_timeout = 1\n\n"
        f"[service.task]\npoll = 0.1\nclaim_lease = {claim_lease}\n\n{tasks}"
    )


def task_table(name: str, instructions: str, **fields: str) -> str:
    """One ``[[service.task.tasks]]`` table."""
    lines = [f"name = {toml_string(name)}", f"instructions = {toml_string(instructions)}"]
    lines += [f"{key} = {toml_string(value)}" for key, value in fields.items()]
    return "[[service.task.tasks]]\n" + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Reply:
    """What ``POST …/messages`` answered (the native API's JSON)."""

    status_code: int
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """The reply's text."""
        return str(self.body["reply"])

    @property
    def turn_id(self) -> str:
        """The turn that answered."""
        return str(self.body["turn_id"])

    @property
    def number(self) -> int:
        """The turn's number in its session."""
        return int(self.body["number"])


class Worker:
    """One ``turnkit serve`` process; its stderr goes to ``<name>.log`` in the cluster's folder."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [*turnkit_command(), "serve"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.pid = self.process.pid
        self.url = ""
        self.frozen = False

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the line announcing the HTTP API (port 0: the port is only known from it)."""

        def announced() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited {self.process.returncode}:\n{self.output()}")
            match = _ANNOUNCED.search(self.output())
            return match.group(1) if match else None

        self.url = wait_until(announced, f"worker {self.name} to listen", timeout)
        return self.url

    def output(self) -> str:
        """Everything the worker printed so far (its log lines at INFO and above)."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def post(
        self,
        path: str,
        text: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = WAIT,
        client: httpx.Client | None = None,
    ) -> Reply:
        """``POST {path}`` with a message; raises what httpx raises when the worker dies under it."""
        body = {"text": text, "user": "tester"}
        if client is not None:
            response = client.post(self.url + path, json=body, headers=headers, timeout=timeout)
        else:
            response = httpx.post(self.url + path, json=body, headers=headers, timeout=timeout)
        return Reply(response.status_code, response.json())

    def post_chat(self, chat: str, text: str, **options: Any) -> Reply:
        """Send ``text`` to chat ``chat`` (its session is the one the chat service keeps for it)."""
        return self.post(f"/api/chats/{chat}/messages", text, **options)

    def post_session(self, session_id: str, text: str, **options: Any) -> Reply:
        """Send ``text`` to session ``session_id``."""
        return self.post(f"/api/sessions/{session_id}/messages", text, **options)

    def new_session(self, chat: str) -> str:
        """Start a fresh session for ``chat``; its id."""
        response = httpx.post(f"{self.url}/api/chats/{chat}/sessions", timeout=WAIT)
        assert response.status_code == 201, response.text
        return str(response.json()["session_id"])

    def kill(self) -> None:
        """SIGKILL: the process dies at once, in the middle of whatever it does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT)
        self.frozen = False

    def stop(self, timeout: float = WAIT) -> int:
        """SIGTERM, as a service manager stops a worker: it finishes what it runs, then exits."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def freeze(self) -> None:
        """SIGSTOP: the process stays (its pid lives) but does nothing: no heartbeat, no commit."""
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: a frozen process goes on where it stopped, late."""
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        """Kill the process (thawing it first, so that the kill is not queued behind SIGSTOP)."""
        if self.process.poll() is None:
            if self.frozen:
                self.thaw()
            self.process.kill()
        try:
            self.process.wait(timeout=WAIT)
        finally:
            self._log.close()


@dataclass(frozen=True)
class Asked:
    """One line of the fixture model's log: a question it was asked, or answered."""

    event: str
    pid: int
    session: str
    turn: str
    number: int
    text: str
    time: float


@dataclass(frozen=True)
class SessionState:
    """One session as the store holds it: its turns by number, its history, its audit trail."""

    record: SessionRecord
    turns: list[TurnRecord]
    messages: list[StoredMessage]
    audit: list[AuditEvent]

    @property
    def history(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every message, in history order."""
        return [(m.message.role, m.message.text) for m in self.messages]

    def statuses(self) -> list[str]:
        """The turns' statuses, by number."""
        return [turn.status for turn in self.turns]


@dataclass(frozen=True)
class Snapshot:
    """Every session of the store at one moment, and the process leases."""

    sessions: dict[str, SessionState]
    owners: list[OwnerRecord]

    def turns(self) -> list[TurnRecord]:
        """Every turn of every session."""
        return [turn for state in self.sessions.values() for turn in state.turns]

    def unfinished(self) -> list[TurnRecord]:
        """Turns still queued or running."""
        return [turn for turn in self.turns() if turn.status in ("queued", "running")]

    def of_kind(self, kind: str) -> dict[str, SessionState]:
        """The sessions of one kind (``chat``, ``task`` …)."""
        return {sid: state for sid, state in self.sessions.items() if state.record.info.kind == kind}


class StoreReader:
    """The shared store, opened from the test process with the runtime's own store class.

    It has an event loop of its own, so that synchronous tests (which drive
    processes and HTTP clients) can read it between their steps.
    """

    def __init__(self, url: str, base_dir: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._store: Store = make_store(StoreConfig(url=url), str(base_dir))
        self._opened = False

    def _run(self, work: Callable[[Store], Any]) -> Any:
        if not self._opened:
            self._loop.run_until_complete(self._store.open())
            self._opened = True
        return self._loop.run_until_complete(work(self._store))

    def snapshot(self) -> Snapshot:
        """Everything the worker tests assert on, read now."""

        async def read(store: Store) -> Snapshot:
            sessions = {}
            for record in await store.list_sessions():
                sid = record.session_id
                sessions[sid] = SessionState(
                    record, await store.turns(sid), await store.messages(sid), await store.audit_events(sid)
                )
            return Snapshot(sessions, await store.owners())

        snapshot: Snapshot = self._run(read)
        return snapshot

    def records(self, namespace: str, collection: str) -> list[dict[str, Any]]:
        """The values of a service's records (``task``, ``runs`` …), by key."""

        async def read(store: Store) -> list[dict[str, Any]]:
            return [
                record.value for record in await store.list_records(namespace, collection, None, {}, None)
            ]

        found: list[dict[str, Any]] = self._run(read)
        return found

    def session(self, session_id: str) -> SessionState:
        """One session, read now."""
        return self.snapshot().sessions[session_id]

    def close(self) -> None:
        """Close the store and the loop."""
        if self._opened:
            self._loop.run_until_complete(self._store.close())
        self._loop.close()


class Cluster:
    """Worker processes, CLI commands and the test process, all on one store.

    ``folder`` holds the ``turnkit.toml`` (written by :meth:`configure`),
    each worker's log, the fixture model's log and its gates.
    """

    def __init__(self, folder: Path, url: str, plugin_dir: Path) -> None:
        self.folder = folder
        self.url = url
        self.gates = folder / "gates"
        self.gates.mkdir(exist_ok=True)
        self.model_log = folder / "model.jsonl"
        self.env = subprocess_env(
            [plugin_dir],
            {
                LOG_ENV: str(self.model_log),
                GATES_ENV: str(self.gates),
                "PYTHONUNBUFFERED": "1",
                "PYTHONFAULTHANDLER": "1",
            },
        )
        self.workers: list[Worker] = []
        self.commands: list[subprocess.Popen[str]] = []
        self.store = StoreReader(url, folder)
        self.configure()

    def configure(self, **options: Any) -> None:
        """Write ``turnkit.toml`` (see :func:`config_text` for ``options``)."""
        (self.folder / "turnkit.toml").write_text(config_text(self.url, **options), encoding="utf-8")

    def serve(self, *names: str) -> list[Worker]:
        """Start one ``turnkit serve`` per name, all at once, and wait until each listens."""
        started = [Worker(name, self.folder, self.env) for name in names]
        self.workers += started
        for worker in started:
            worker.wait_listening()
        return started

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``turnkit ARGS…`` in the background (stdout and stderr captured)."""
        process = subprocess.Popen(
            [*turnkit_command(), *args],
            cwd=self.folder,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.commands.append(process)
        return process

    def finish(self, process: subprocess.Popen[str], timeout: float = WAIT) -> CliResult:
        """Wait for a command :meth:`start` started; what it printed and how it exited.

        One that hangs is made to print every thread's stack (SIGABRT with
        ``PYTHONFAULTHANDLER``) before the wait fails, with the model's log
        and the workers' output.
        """
        command = tuple(str(arg) for arg in process.args)  # type: ignore[union-attr]
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            try:
                out, err = process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            model = "\n".join(map(str, self.asked("asked") + self.asked("answered")))
            raise Timeout(
                f"{' '.join(command)} (pid {process.pid}) did not finish within {timeout}s:\n{out}{err}\n"
                f"--- the model's log\n{model}\n{self.logs()}"
            ) from None
        return CliResult(command, process.returncode, out, err)

    def open_gate(self, name: str) -> None:
        """Let the turns waiting at gate ``name`` answer."""
        (self.gates / name).write_text("open\n", encoding="utf-8")

    def asked(self, event: str = "asked") -> list[Asked]:
        """The fixture model's log lines of ``event`` (``asked`` or ``answered``), in order."""
        if not self.model_log.exists():
            return []
        lines = self.model_log.read_text(encoding="utf-8").splitlines()
        found = [Asked(**json.loads(line)) for line in lines if line.strip()]
        return [line for line in found if line.event == event]

    def wait_asked(self, text: str, timeout: float = WAIT, count: int = 1) -> list[Asked]:
        """Wait until the model was asked about ``text`` ``count`` times; those log lines."""

        def seen() -> list[Asked] | None:
            found = [line for line in self.asked() if line.text == text]
            return found if len(found) >= count else None

        return wait_until(seen, f"the model to be asked {text!r} {count} time(s)", timeout)

    def wait_quiet(self, timeout: float = WAIT) -> Snapshot:
        """Wait until no turn is queued or running anywhere; the store as it then is."""

        def quiet() -> Snapshot | None:
            snapshot = self.store.snapshot()
            return None if snapshot.unfinished() else snapshot

        return wait_until(quiet, "every turn to end", timeout, interval=0.1)

    def logs(self) -> str:
        """Every worker's output, for a failure message."""
        return "\n".join(f"--- {w.name} (pid {w.pid})\n{w.output()}" for w in self.workers)

    def close(self) -> None:
        """Kill every process started here and close the store."""
        for process in self.commands:
            if process.poll() is None:
                process.kill()
            process.communicate()
        for worker in self.workers:
            worker.close()
        self.store.close()


def tracebacks(workers: Iterable[Worker]) -> list[str]:
    """The workers whose output holds a traceback (with that output)."""
    return [f"{w.name}:\n{w.output()}" for w in workers if "Traceback" in w.output()]


def once_each(state: SessionState) -> list[str]:
    """What is wrong with a session's history against "every message answered once, in order".

    A turn runs to completion before the next one of its session starts,
    so the history must alternate: each user message, then the model's
    ``re: TEXT`` for exactly that message, never twice, never out of order
    (an interrupted turn leaves its user message, and its re-run's reply
    follows it).
    """
    problems = []
    history = state.history
    if len(history) % 2:
        problems.append(f"odd history length {len(history)}")
    for index in range(0, len(history) - 1, 2):
        (role, text), (reply_role, reply) = history[index], history[index + 1]
        if role != "user" or reply_role != "assistant" or reply != f"re: {text}":
            problems.append(f"at {index}: {history[index]} then {history[index + 1]}")
    return problems


def turns_of_messages(state: SessionState) -> dict[int, list[TurnRecord]]:
    """The turns that ran each stored user message (its first turn and any re-run), by message id."""
    found: dict[int, list[TurnRecord]] = {}
    for turn in state.turns:
        if turn.message_id is not None:
            found.setdefault(turn.message_id, []).append(turn)
    return found


def ran_once(turns: Sequence[TurnRecord]) -> bool:
    """Whether the turns of one message are one completed turn, or an interrupted one and its re-run."""
    statuses = [turn.status for turn in turns]
    if statuses == ["completed"]:
        return turns[0].rerun_of is None
    if statuses == ["interrupted", "completed"]:
        return turns[1].rerun_of == turns[0].turn_id
    return False
