"""What turnkit-ratelimit costs a turn: one session's turns with and without the plugin, one process.

Each variant runs a real agent (the runtime's ``Agent`` on a fresh SQLite
file, the built-in echo model) for ``--turns`` turns of one session from one
sender, with limits too high to ever deny, so every turn pays the full
price: a read and a compare-and-set write per bucket. Variants run in turn
for ``--rounds`` rounds; the best time of each is kept (the least disturbed
by other work on the machine). Printed: milliseconds per turn and the ratio
to the agent without the plugin.

    python benchmarks/bench_ratelimit.py [--turns 300] [--rounds 3] [--synchronous full|normal]

Needs turnkit and turnkit-ratelimit importable (installed, or ``PYTHONPATH=src``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from turnkit.testing import AgentHarness
from turnkit_ratelimit import RateLimitPlugin

NEVER = {"capacity": 1_000_000, "refill_per_second": 1_000_000.0}
OFF = {"enabled": False}
#: Variant name → ``[plugin.ratelimit]`` table, or ``None`` for no plugin.
VARIANTS: dict[str, dict[str, Any] | None] = {
    "no plugin": None,
    "per principal": {"per_principal": NEVER, "per_session": OFF},
    "principal + session": {"per_principal": NEVER, "per_session": NEVER},
}


async def seconds_for(turns: int, settings: dict[str, Any] | None, synchronous: str, folder: Path) -> float:
    """Time ``turns`` turns of one session on a new agent in ``folder``."""
    harness = AgentHarness(folder)
    harness.configure(store={"synchronous": synchronous})
    if settings is not None:
        harness.register(RateLimitPlugin(), "ratelimit", settings=settings)
    async with harness.build() as agent:
        first = await agent.send("warm-up", initiator_id="bench")
        session = first.turn.session_id
        started = time.perf_counter()
        for number in range(turns):
            result = await agent.send(f"turn {number}", session, initiator_id="bench")
            assert result.turn.status == "completed", result
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = parser.parse_args()

    best = dict.fromkeys(VARIANTS, float("inf"))
    for _ in range(args.rounds):
        for name, settings in VARIANTS.items():
            with tempfile.TemporaryDirectory() as folder:
                elapsed = asyncio.run(seconds_for(args.turns, settings, args.synchronous, Path(folder)))
            best[name] = min(best[name], elapsed)

    floor = best["no plugin"]
    print(f"{args.turns} turns of one session, SQLite synchronous={args.synchronous}, best of {args.rounds}")
    for name, elapsed in best.items():
        per_turn, rate, ratio = elapsed / args.turns * 1000, args.turns / elapsed, elapsed / floor
        print(f"  {name:<20} {per_turn:7.3f} ms/turn  {rate:7.0f} turns/s  x{ratio:.2f}")


if __name__ == "__main__":
    main()
