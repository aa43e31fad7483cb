"""Turn throughput and prompt assembly against floors measured in the same run.

Run: ``python benchmarks/bench_turns.py`` (``--quick`` for a shorter run).

* **Floor**: a hand loop doing what a turn must at least do — build the
  reply, and write the inbound message and the reply in one SQLite
  transaction (a WAL file with the same pragmas as the store).
* **turnkit**: an :class:`~turnkit.agent.Agent` on a SQLite file with the
  echo model and 10 trivial plugins spread over the turn points (guard,
  pipelines, effects, a resolve answering ``None``). Reported: turns per
  second in one session, and across 100 sessions driven concurrently; the
  ratio is ours / floor time per turn (the bar, docs/architecture.md, "Bars", is <= 3).
* **Flatness**: the mean turn time over turns 10-110 and over the last 100
  of a 2,000-turn session.
* **Prompt assembly**: the time to assemble the next prompt (store window,
  pending context, assembly) for a session of 10 messages and one of
  100,000; it must follow the window, not the history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from turnkit.agent import Agent
from turnkit.config import parse_config
from turnkit.manager import PluginManager
from turnkit.prompting import assemble
from turnkit_hookspecs import Message, hookimpl


def plugins() -> list[tuple[str, object]]:
    """Ten plugins over guard, pipeline, resolve and effect points."""

    class Guard:
        @hookimpl
        def turn_authorize(self, message: Message) -> None:
            return None

    class Inbound:
        @hookimpl
        def turn_inbound(self, message: Message) -> None:
            return None

    class Prompt_:
        @hookimpl
        def turn_prompt(self, prompt: object) -> None:
            return None

    class Outbound:
        @hookimpl
        def turn_outbound(self, message: Message) -> None:
            return None

    class NoAnswer:
        @hookimpl
        def turn_reply(self, prompt: object) -> None:
            return None

    class Completed:
        @hookimpl
        async def turn_completed(self, reply: Message) -> None:
            return None

    kinds = [Guard, Guard, Inbound, Inbound, Prompt_, Prompt_, Outbound, NoAnswer, Completed, Completed]
    return [(f"trivial-{i:02d}", cls()) for i, cls in enumerate(kinds)]


def agent(folder: Path, synchronous: str = "full") -> Agent:
    store = {"url": str(folder / "bench.db"), "synchronous": synchronous}
    config = parse_config({"store": store, "turns": {"history": 20}})
    manager = PluginManager(config.plugins)
    for name, plugin in plugins():
        manager.register(plugin, name)
    return Agent(config, manager=manager)


def floor(path: Path, turns: int, synchronous: str) -> float:
    """Seconds per turn of the hand loop."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, session TEXT, role TEXT, body TEXT)")
    start = time.perf_counter()
    for number in range(turns):
        text = f"message {number}"
        reply = json.dumps({"role": "assistant", "text": text})
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages (session, role, body) VALUES (?, ?, ?)", ("s", "user", text))
        db.execute("INSERT INTO messages (session, role, body) VALUES (?, ?, ?)", ("s", "assistant", reply))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / turns


async def one_session(folder: Path, turns: int, synchronous: str) -> tuple[float, list[float]]:
    """Seconds per turn over one session, and each turn's time."""
    times = []
    async with agent(folder, synchronous) as a:
        session = (await a.sessions.open()).session_id
        for number in range(turns):
            started = time.perf_counter()
            result = await a.send(f"message {number}", session)
            times.append(time.perf_counter() - started)
            assert result.turn.status == "completed", result
    return sum(times) / turns, times


async def many_sessions(folder: Path, sessions: int, turns: int, synchronous: str) -> float:
    """Seconds per turn with ``sessions`` sessions driven concurrently."""
    async with agent(folder, synchronous) as a:
        ids = [(await a.sessions.open()).session_id for _ in range(sessions)]

        async def drive(session: str) -> None:
            for number in range(turns):
                await a.send(f"message {number}", session)

        started = time.perf_counter()
        await asyncio.gather(*(drive(s) for s in ids))
        return (time.perf_counter() - started) / (sessions * turns)


async def assembly(folder: Path, sizes: list[int], rounds: int) -> dict[int, float]:
    """Seconds to assemble the next prompt for sessions of each size."""
    results = {}
    async with agent(folder) as a:
        store = a.store
        for size in sizes:
            session = (await a.sessions.open()).session_id
            for number in range(size):
                await store.append_message(session, Message.of("user", f"m{number}"))
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                window = await store.window(session, a.config.turns.history)
                pending = await store.pending_context(session)
                assemble(window, None, Message.of("user", "next"), pending, a.actions.tools)
                samples.append(time.perf_counter() - started)
            results[size] = statistics.median(samples)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns (a smoke run)")
    quick = parser.parse_args().quick
    turns, history = (300, 10_000) if quick else (2000, 100_000)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # a real disk, not a tmpfs: fsync counts
        folder = Path(tmp)
        for synchronous in ("full", "normal"):
            floor_turn = floor(folder / f"floor-{synchronous}.db", turns, synchronous)
            ours, times = asyncio.run(one_session(_sub(folder, f"one-{synchronous}"), turns, synchronous))
            many = _sub(folder, f"many-{synchronous}")
            concurrent = asyncio.run(many_sessions(many, 100, max(2, turns // 100), synchronous))
            early, late = statistics.mean(times[10:110]), statistics.mean(times[-100:])
            print(f"[store] synchronous = {synchronous}")
            rate, cost = 1 / floor_turn, 1e6 * floor_turn
            print(f"  floor (hand loop, 1 txn/turn)  {rate:7.0f} turns/s {cost:7.0f} µs/turn")
            for label, value in (("one session", ours), ("100 sessions at once", concurrent)):
                print(
                    f"  turnkit, {label:<21} {1 / value:7.0f} turns/s {1e6 * value:7.0f} µs/turn"
                    f"  ratio {value / floor_turn:.2f}"
                )
            print(
                f"  flatness: turns 10-110 {1e6 * early:.0f} µs, last 100 of {turns} {1e6 * late:.0f} µs,"
                f" ratio {late / early:.2f}"
            )
        sizes = asyncio.run(assembly(_sub(folder, "assembly"), [10, history], 50))
    small, large = sizes[10], sizes[history]
    print(
        f"prompt assembly: 10 messages {1e6 * small:.0f} µs, {history} messages {1e6 * large:.0f} µs,"
        f" ratio {large / small:.2f}"
    )
    sys.stdout.flush()


def _sub(folder: Path, name: str) -> Path:
    path = folder / name
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
