"""Measuring recognition: word error rate, and synthetic speech to measure it on.

The plugin's tests and ``benchmarks/quality.py`` use these; so can anyone
checking the plugin against their own recordings or phrases.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .worker import words

ESPEAK = "espeak-ng"


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis``, per reference word.

    Both are compared as the recognizer spells words (lower case, no
    punctuation). 0.0 is perfect; above 1.0 is possible (many insertions).
    """
    expected, heard = words(reference), words(hypothesis)
    if not expected:
        return float(len(heard))
    previous = list(range(len(heard) + 1))
    for i, word in enumerate(expected, start=1):
        current = [i]
        for j, other in enumerate(heard, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1] / len(expected)


def synthesize(text: str, *, voice: str = "en-us", speed: int = 140) -> bytes:
    """``text`` spoken by espeak-ng as a WAV file (22.05 kHz mono 16-bit).

    Raises :class:`FileNotFoundError` when espeak-ng is not installed
    (``apt-get install espeak-ng``).
    """
    program = shutil.which(ESPEAK)
    if program is None:
        raise FileNotFoundError(f"{ESPEAK} is not installed (apt-get install {ESPEAK})")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "speech.wav"
        subprocess.run(
            [program, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True
        )
        return path.read_bytes()
