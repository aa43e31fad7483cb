"""The recognizer's parts on their own: words, grammar, the worker process, and the WER used to judge it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from material import OTHER_VOICE, Speak
from turnkit_asr import Recognizer, RecognizerError, read_wav, word_error_rate
from turnkit_asr.recognizer import WorkerProcess
from turnkit_asr.worker import grammar, words

# ------------------------------------------------------------------ words and grammar


def test_words_are_spelled_as_the_dictionary_spells_them() -> None:
    assert words("Turn ON the kitchen-lights, please!") == [
        "turn",
        "on",
        "the",
        "kitchen",
        "lights",
        "please",
    ]
    assert words("What's the time?  It's 5") == ["what's", "the", "time", "it's", "5"]


def test_the_grammar_accepts_one_of_the_phrases() -> None:
    assert grammar([["call", "my", "mother"], ["lock", "the", "door"]]) == (
        "#JSGF V1.0;\ngrammar phrases;\npublic <phrases> = call my mother | lock the door;\n"
    )


# ------------------------------------------------------------------ word error rate


@pytest.mark.parametrize(
    ("reference", "hypothesis", "rate"),
    [
        ("turn on the kitchen lights", "turn on the kitchen lights", 0.0),
        ("Turn on the kitchen lights!", "turn on the kitchen lights", 0.0),
        ("turn on the kitchen lights", "serve on the kitchen lights", 0.2),  # a substitution
        ("turn on the kitchen lights", "turn on the lights", 0.2),  # a deletion
        ("call my mother", "call all my mother", 1 / 3),  # an insertion
        ("call my mother", "", 1.0),
        ("open the door", "oh and i am not all are", 7 / 3),
        ("", "", 0.0),
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, rate: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(rate)


# ------------------------------------------------------------------ the worker process


def test_a_phrase_the_dictionary_cannot_spell_is_refused_when_the_worker_starts() -> None:
    with pytest.raises(RecognizerError) as raised:
        WorkerProcess(["call my mother", "set a timer for 5 minutes", "  !? "])
    assert str(raised.value) == (
        "the recognizer could not start: ValueError: phrases[1] 'set a timer for 5 minutes': '5' not in "
        "the recognizer's English dictionary (write numbers and symbols as words)"
    )


def test_a_worker_that_died_is_reported_as_a_recognizer_failure(speak: Speak) -> None:
    worker = WorkerProcess(["call my mother"])
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    with pytest.raises(RecognizerError, match=r"^the recognizer process exited \(status -9\)$"):
        worker.transcribe(read_wav(speak("call my mother"), 60))
    worker.close()


def test_a_restricted_recognizer_hears_whole_phrases_or_nothing(speak: Speak) -> None:
    phrases = ("turn the volume down", "call my mother", "lock the front door")

    async def hear_all() -> list[str]:
        async with Recognizer(phrases, 1) as recognizer:
            heard = []
            for text in ("lock the front door", "turn the volume", "close the window"):
                heard.append(await recognizer.transcribe(read_wav(speak(text, OTHER_VOICE), 60)))
            return heard

    assert asyncio.run(hear_all()) == ["lock the front door", "", ""]
