"""Recognition quality and speed of turnkit-asr on synthetic speech: prints figures, asserts nothing.

Twenty sentences are spoken by espeak-ng in a few voices and speeds, read
with the plugin's own WAV reader and recognized by its worker process, twice:
with the open vocabulary (the model's general English language model) and
with the twenty sentences as ``phrases``. Printed: each recognition's word
error rate (WER) and transcript, the WER per voice and overall, and the
real-time factor (recognition time over audio length, the worker's IPC
included; below 1 is faster than real time).

espeak-ng's robotic voices are far from the recorded speech the acoustic
model was trained on, so the open-vocabulary figures are a floor, not what
a human speaker gets.

    python benchmarks/quality.py            # needs espeak-ng and pocketsphinx
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from turnkit_asr import Recognizer, read_wav, synthesize, word_error_rate
from turnkit_asr.audio import SAMPLE_RATE, SAMPLE_WIDTH

SENTENCES = [
    "turn on the kitchen lights",
    "turn off the bedroom lights",
    "what is the weather like today",
    "set an alarm for seven in the morning",
    "set a timer for ten minutes",
    "call my mother",
    "play some music",
    "remind me to buy milk tomorrow",
    "open the garage door",
    "how far is the moon",
    "send a message to john",
    "what time is it",
    "add eggs to the shopping list",
    "read my new emails",
    "lock the front door",
    "when is my next meeting",
    "turn the volume down",
    "book a table for two tonight",
    "what is the capital of france",
    "cancel my last order",
]
#: (espeak-ng voice, words per minute)
VOICES = [("en-us", 140), ("en-us+klatt4", 130), ("en-us+f3", 160)]


async def run(phrases: tuple[str, ...], recordings: list[tuple[str, str, bytes]]) -> None:
    async with Recognizer(phrases, 1) as recognizer:
        started = time.perf_counter()
        await recognizer.start()
        print(f"worker start (process + model load): {time.perf_counter() - started:.2f} s")
        per_voice: dict[str, list[float]] = {}
        audio_seconds = decode_seconds = 0.0
        errors = reference_words = 0.0
        for sentence, voice, pcm in recordings:
            started = time.perf_counter()
            heard = await recognizer.transcribe(pcm)
            decode_seconds += time.perf_counter() - started
            audio_seconds += len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
            wer = word_error_rate(sentence, heard)
            per_voice.setdefault(voice, []).append(wer)
            words = len(sentence.split())
            errors += wer * words
            reference_words += words
            print(f"  {wer:5.2f}  {voice:<18} {sentence!r:<42} -> {heard!r}")
        for voice, rates in per_voice.items():
            print(f"WER {voice:<18} {sum(rates) / len(rates):.3f} (mean over sentences)")
        print(f"WER overall (errors / reference words): {errors / reference_words:.3f}")
        print(
            f"real-time factor: {decode_seconds / audio_seconds:.3f} "
            f"({decode_seconds:.1f} s for {audio_seconds:.1f} s of audio)"
        )


def main() -> None:
    recordings = [
        (sentence, f"{voice}@{speed}", read_wav(synthesize(sentence, voice=voice, speed=speed), 60))
        for voice, speed in VOICES
        for sentence in SENTENCES
    ]
    print(f"{len(recordings)} recordings: {len(SENTENCES)} sentences x {len(VOICES)} voices\n")
    print("== open vocabulary (general English language model)")
    asyncio.run(run((), recordings))
    print("\n== phrases: the twenty sentences as [plugin.asr] phrases")
    asyncio.run(run(tuple(SENTENCES), recordings))


if __name__ == "__main__":
    main()
