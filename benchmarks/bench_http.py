"""What the HTTP channel adds to a turn: the same turns asked for directly and over loopback HTTP.

Run: ``python benchmarks/bench_http.py`` (``--turns N``, default 500;
``--synchronous normal`` takes the disk's fsync out of every figure).

One agent (SQLite file, echo model, the chat service serving its HTTP
channel on a free loopback port) runs four series of ``N`` turns, each in a
session of its own, after a warm-up, one turn of each series in turn (so
that the machine's noise hits all alike):

* **bare turn**: ``agent.send(text, session_id)``, the floor;
* **chat path**: ``ChatService.handle`` with the same message as a channel
  message (the chat points, the session binding) without HTTP;
* **HTTP /api**: ``POST /api/chats/{chat}/messages`` with httpx over one
  keep-alive connection;
* **HTTP /v1**: ``POST /v1/chat/completions`` likewise (``X-Turnkit-Chat``).

The client runs on the server's event loop, so the figures include the
client's share of the CPU too. Printed per series: the median wall-clock
µs per turn and the mean process CPU µs per turn (the wall clock also
counts waiting for the disk and for other processes on a busy machine),
each with its ratio to the bare turn's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from turnkit.agent import Agent
from turnkit.config import parse_config
from turnkit.manager import PluginManager
from turnkit_hookspecs import ChannelMessage, Message, Principal
from turnkit_services.chat import ChatService
from turnkit_services.chat.http import HttpChannel

WARMUP = 50


@dataclass
class Timing:
    """One series' calls: wall-clock and process CPU seconds of each."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def interleaved(turns: int, series: dict[str, Callable[[int], Awaitable[object]]]) -> dict[str, Timing]:
    """Time each call of each series, calling them in turn so that the machine's noise hits all alike."""
    for i in range(WARMUP):
        for one in series.values():
            await one(i)
    timings = {name: Timing() for name in series}
    for i in range(turns):
        for name, one in series.items():
            wall, cpu = time.perf_counter(), time.process_time()
            await one(i)
            timings[name].wall.append(time.perf_counter() - wall)
            timings[name].cpu.append(time.process_time() - cpu)
    return timings


async def listening(chat: ChatService, serving: asyncio.Task[None]) -> HttpChannel:
    while not (isinstance(channel := chat.channels.get("http"), HttpChannel) and channel.ready.is_set()):
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    return channel


async def main(turns: int, synchronous: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {
                "store": {"url": str(Path(folder) / "bench.db"), "synchronous": synchronous},
                "service": {"chat": {"http": {"port": 0}}},
            }
        )
        manager = PluginManager(config.plugins)
        chat = ChatService()
        manager.add_service(chat)
        async with Agent(config, manager=manager) as agent:
            serving = asyncio.create_task(agent.serve())
            channel = await listening(chat, serving)

            async def bare(i: int) -> object:
                return await agent.send(f"message {i}", "bare")

            async def chat_path(i: int) -> object:
                inbound = ChannelMessage(
                    "http", "direct", Principal("http", "bench"), Message.of("user", f"message {i}")
                )
                return await chat.handle(inbound, channel)

            async with httpx.AsyncClient(base_url=str(channel.address), timeout=60) as client:

                async def api(i: int) -> object:
                    response = await client.post("/api/chats/api/messages", json={"text": f"message {i}"})
                    response.raise_for_status()
                    return response

                async def openai(i: int) -> object:
                    body = {"model": "echo", "messages": [{"role": "user", "content": f"message {i}"}]}
                    response = await client.post(
                        "/v1/chat/completions", json=body, headers={"X-Turnkit-Chat": "v1"}
                    )
                    response.raise_for_status()
                    return response

                series = {"bare turn": bare, "chat path": chat_path, "HTTP /api": api, "HTTP /v1": openai}
                results = await interleaved(turns, series)

            agent.request_stop()
            await serving

    wall = {name: statistics.median(t.wall) for name, t in results.items()}
    cpu = {name: statistics.fmean(t.cpu) for name, t in results.items()}
    print(f"{turns} turns per series, one session each, interleaved; µs per turn and ratio to the bare turn")
    print(f"{'':<10} {'wall (median)':>20} {'CPU (mean)':>20}")
    for name in results:
        print(
            f"{name:<10} {wall[name] * 1e6:11.0f} {wall[name] / wall['bare turn']:7.2f}x"
            f" {cpu[name] * 1e6:11.0f} {cpu[name] / cpu['bare turn']:7.2f}x"
        )
    overhead = wall["HTTP /api"] - wall["chat path"], cpu["HTTP /api"] - cpu["chat path"]
    print(
        f"HTTP over the chat path: {overhead[0] * 1e6:.0f} µs wall, {overhead[1] * 1e6:.0f} µs CPU per turn"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full", help="the store's SQLite synchronous"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.turns, arguments.synchronous))
