"""The recognizer process: one pocketsphinx decoder, fed audio on stdin, answering on stdout.

:mod:`turnkit_asr.recognizer` runs this file as a script (``python worker.py``)
rather than decoding in a thread of the agent's process, because
pocketsphinx's extension holds the GIL for a whole decode: in a thread it
would stop the agent's event loop — every session, not only the voice
message's — for as long as the recognition takes (about half the length of
the audio; ``benchmarks/loop_lag.py`` measures it). The script imports only
the standard library and pocketsphinx, so it starts quickly and cannot drag
the agent's modules into the child.

The protocol is a sequence of frames, each a 4-byte big-endian length and
that many bytes. The parent's first frame is JSON ``{"phrases": [...]}``;
the worker answers ``{"ok": true}`` once its decoder is loaded, or
``{"error": "..."}`` and exits. Every later frame is 16 kHz mono 16-bit
little-endian PCM, answered by ``{"text": "..."}`` or ``{"error": "..."}``.
The worker exits when its stdin closes, which also happens when the agent's
process dies, so it never outlives the agent.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

HEADER = struct.Struct(">I")
#: The name of the grammar search built from ``phrases``.
GRAMMAR = "phrases"
#: Words as the dictionary spells them: lower case, digits, inner apostrophes (``what's``).
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """The words of ``text`` as the recognizer spells them: lower case, punctuation dropped."""
    return _WORD.findall(text.lower())


def grammar(phrases: Sequence[Sequence[str]]) -> str:
    """A JSGF grammar accepting exactly one of ``phrases`` (each a list of words)."""
    alternatives = " | ".join(" ".join(phrase) for phrase in phrases)
    return f"#JSGF V1.0;\ngrammar {GRAMMAR};\npublic <{GRAMMAR}> = {alternatives};\n"


class Listener:
    """A decoder on the model shipped inside pocketsphinx; restricted to ``phrases`` if any are given.

    A phrase with no words, or with a word the dictionary lacks, is a
    ``ValueError`` naming it: the recognizer could never hear it.
    """

    def __init__(self, phrases: Sequence[str]) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]  # no type information shipped

        self.decoder = Decoder(loglevel="FATAL")
        spelled = [words(phrase) for phrase in phrases]
        for index, (phrase, phrase_words) in enumerate(zip(phrases, spelled, strict=True)):
            if not phrase_words:
                raise ValueError(f"phrases[{index}] {phrase!r} has no words")
            unknown = [word for word in phrase_words if self.decoder.lookup_word(word) is None]
            if unknown:
                raise ValueError(
                    f"phrases[{index}] {phrase!r}: {', '.join(map(repr, unknown))} not in the recognizer's "
                    "English dictionary (write numbers and symbols as words)"
                )
        #: What a restricted decoder may answer; empty when it is not restricted.
        self.phrases = frozenset(" ".join(phrase_words) for phrase_words in spelled)
        if spelled:
            self.decoder.add_jsgf_string(GRAMMAR, grammar(spelled))
            self.decoder.activate_search(GRAMMAR)

    def transcribe(self, pcm: bytes) -> str:
        """The words heard in ``pcm`` (16 kHz mono 16-bit), or ``""`` when none were.

        A restricted decoder answers a whole phrase or nothing: when the
        speech matches no phrase, pocketsphinx may end on the beginning of
        one ("turn the volume" for "turn the volume down"), which as a
        command would mean something else.
        """
        self.decoder.start_utt()
        # full_utt: the whole recording is there, so the cepstral mean is taken over all of it
        # (measured on 18 espeak-ng recordings: 0.61 WER, against 0.69-0.73 fed in pieces with a running mean)
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        text = str(hypothesis.hypstr) if hypothesis is not None else ""
        if self.phrases and text not in self.phrases:
            return ""
        return text


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload, or ``None`` at the end of the stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Send one frame and flush it."""
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _answer(stream: IO[bytes], **fields: Any) -> None:
    write_frame(stream, json.dumps(fields).encode())


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def serve(requests: IO[bytes], answers: IO[bytes]) -> int:
    """Answer frames until ``requests`` ends; the exit status."""
    setup = read_frame(requests)
    if setup is None:
        return 0
    try:
        listener = Listener(json.loads(setup)["phrases"])
    except Exception as exc:
        _answer(answers, error=_failure(exc))
        return 1
    _answer(answers, ok=True)
    while (pcm := read_frame(requests)) is not None:
        try:
            _answer(answers, text=listener.transcribe(pcm))
        except Exception as exc:
            _answer(answers, error=_failure(exc))
    return 0


def main() -> int:
    """Run the worker on stdin and stdout, keeping anything else written to fd 1 off the protocol."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the C library's stray output goes to stderr, not into a frame
    sys.stdout = sys.stderr
    return serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main())
