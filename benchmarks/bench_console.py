"""How fast the console answers on a big store: its pages over 100,000 sessions, over loopback HTTP.

Run: ``python benchmarks/bench_console.py`` (``--sessions N``, default 100000;
``--runs R``, default 20; ``--store FILE`` keeps the store for another run).

The store is a SQLite file made by the store itself (schema and indexes by
its migrations), then filled in one transaction with ``N`` sessions of two
messages each (a user message and a reply, a sprinkling of rare words),
every tenth one a task, every seventh closed, every third on the
``telegram`` channel; the messages' full-text index is filled by its
trigger, as in an agent's store. ``turnkit console`` is then served on a
free loopback port (uvicorn, as the command does) and each request below is
timed ``R`` times with httpx over one keep-alive connection, after a
warm-up. Printed per request: the median, the fastest and the slowest
wall-clock milliseconds, and the size of the answer. The bar: every page
well under a second (the figures are milliseconds; the noise is the
spread between fastest and slowest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from turnkit.config import parse_config
from turnkit.console.hosts import read_only_console
from turnkit.console.server import listen
from turnkit.manager import PluginManager
from turnkit.store import SQLiteStore

WORDS = [
    *("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"),
    *("hotel", "india", "juliet", "kilo", "lima", "mike"),
]


def fill(path: Path, sessions: int) -> None:
    """``sessions`` sessions of two messages each, written in one transaction."""
    random.seed(7)
    db = sqlite3.connect(path)
    now = time.time() - sessions
    body = (
        '{{"role":"{role}","blocks":[{{"type":"text","text":"{text}"}}],'
        '"id":null,"author":null,"metadata":{{}}}}'
    )
    with db:
        db.execute("INSERT INTO agents (id, registered_at, last_seen) VALUES ('bench', ?, ?)", (now, now))
        message = 0
        for number in range(sessions):
            stamp = now + number
            session_id = f"{number:08x}{random.getrandbits(96):024x}"
            kind = "task" if number % 10 == 0 else "chat"
            status = "closed" if number % 7 == 0 else "active"
            channel = "telegram" if number % 3 == 0 else "http"
            metadata = json.dumps({"channel": channel, "chat_id": str(number)})
            db.execute(
                "INSERT INTO sessions (id, agent_id, kind, status, parent_id, root_id, fork_point, metadata,"
                " created_at, updated_at) VALUES (?, 'bench', ?, ?, NULL, NULL, NULL, ?, ?, ?)",
                (session_id, kind, status, metadata, stamp, stamp),
            )
            rare = f" zebra{number}" if number % 1000 == 0 else ""
            text = " ".join(random.choices(WORDS, k=8)) + rare
            for role in ("user", "assistant"):
                message += 1
                db.execute(
                    "INSERT INTO messages (id, session_id, turn_id, role, body, created_at)"
                    " VALUES (?, ?, NULL, ?, ?, ?)",
                    (message, session_id, role, body.format(role=role, text=text), stamp),
                )
    db.close()


async def measure(url: str, paths: list[str], runs: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for path in paths:
            for _ in range(3):  # warm-up: the page cache, the statement cache
                (await client.get(path)).raise_for_status()
            took = []
            size = 0
            for _ in range(runs):
                began = time.perf_counter()
                response = await client.get(path)
                took.append(1000 * (time.perf_counter() - began))
                response.raise_for_status()
                size = len(response.content)
            print(
                f"{path:<58} median {statistics.median(took):7.2f} ms  fastest {min(took):7.2f}"
                f"  slowest {max(took):7.2f}  ({size} bytes)"
            )


async def main(store_path: Path, sessions: int, runs: int) -> None:
    if not store_path.exists():
        made = SQLiteStore(str(store_path))
        await made.open()  # the schema, by the migrations
        await made.close()
        began = time.perf_counter()
        fill(store_path, sessions)
        print(f"filled {store_path} with {sessions} sessions in {time.perf_counter() - began:.1f} s")
    store = SQLiteStore(str(store_path))
    await store.open()
    config = parse_config({"store": {"url": str(store_path)}})
    app = read_only_console(store, PluginManager.load(config, strict=False), None)
    listener = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            page = (await client.get("/api/sessions")).json()
            some = page["sessions"][0]["session_id"]
            cursor = page["next"]
            for _ in range(98):  # the 100th page, reached as a reader paging on would reach it
                cursor = (await client.get("/api/sessions", params={"after": cursor})).json()["next"]
        paths = [
            "/api/sessions",
            "/api/sessions?kind=task",
            "/api/sessions?status=closed",
            "/api/sessions?channel=telegram",
            "/api/sessions?kind=task&status=closed&channel=telegram",
            f"/api/sessions?after={cursor}",
            "/api/sessions?q=zebra5000",
            "/api/sessions?q=alpha",
            "/api/sessions?q=alpha%20kilo%20mike",
            f"/api/sessions?q={some[:6]}",
            f"/api/sessions/{some}",
            "/api/audit",
        ]
        print(f"{sessions} sessions, {2 * sessions} messages; {runs} runs per request")
        await measure(url, paths, runs)
    finally:
        server.should_exit = True
        await serving
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", type=Path, help="keep the store here (made if missing)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="turnkit-bench-console-") as scratch:
        asyncio.run(main(options.store or Path(scratch) / "console.db", options.sessions, options.runs))
