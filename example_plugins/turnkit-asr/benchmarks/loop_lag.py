"""Why turnkit-asr decodes in worker processes: prints figures, asserts nothing.

Measured on one recording (a few sentences from espeak-ng, about 8 s):

* the event loop's lag while the recording is decoded, with a task that
  asks to wake every 10 ms: decoding with pocketsphinx in a thread
  (``asyncio.to_thread``) against the plugin's worker process;
* what a decoder costs to load, against what a decode costs — the case for
  keeping one decoder per worker rather than loading one per message;
* two recordings at once with ``workers = 1`` and ``workers = 2``.

    python benchmarks/loop_lag.py            # needs espeak-ng and pocketsphinx
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from turnkit_asr import Recognizer, read_wav, synthesize
from turnkit_asr.audio import SAMPLE_RATE, SAMPLE_WIDTH
from turnkit_asr.worker import Listener

SPEECH = (
    "set an alarm for seven in the morning. what is the capital of france. "
    "remind me to buy milk tomorrow. book a table for two tonight."
)
TICK = 0.010


async def lag_while(work: Callable[[], Awaitable[Any]]) -> tuple[float, float, int]:
    """(seconds the work took, the longest the loop was late for a tick, ticks seen)."""
    done = asyncio.Event()
    lags: list[float] = []

    async def tick() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - asked - TICK)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(TICK * 3)  # the ticker is running before the work starts
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await ticker
    return took, max(lags), len(lags)


async def main() -> None:
    pcm = read_wav(synthesize(SPEECH, voice="en-us+klatt4", speed=130), 60)
    seconds = len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
    print(f"recording: {seconds:.1f} s of audio")

    started = time.perf_counter()
    listener = Listener(())
    print(f"loading a decoder (model, dictionary, language model): {time.perf_counter() - started:.2f} s")

    took, lag, ticks = await lag_while(lambda: asyncio.to_thread(listener.transcribe, pcm))
    print(f"in a thread:          decode {took:.2f} s, loop late by up to {lag:.3f} s, {ticks} ticks")

    async with Recognizer((), 1) as single, Recognizer((), 2) as double:
        await single.start()
        took, lag, ticks = await lag_while(lambda: single.transcribe(pcm))
        print(f"in a worker process:  decode {took:.2f} s, loop late by up to {lag:.3f} s, {ticks} ticks")

        await asyncio.gather(double.start(), double.start())
        for name, recognizer in (("workers = 1", single), ("workers = 2", double)):
            started = time.perf_counter()
            await asyncio.gather(recognizer.transcribe(pcm), recognizer.transcribe(pcm))
            print(f"two recordings at once, {name}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
