"""Fixtures of the plugin's tests; the material they are built from is in ``material.py``.

The ``turnkit_agent`` fixture comes from the runtime's fixture kit
(``turnkit.testing``, registered through ``pytest11``); nothing here replaces it.
"""

from __future__ import annotations

import shutil

import pytest
from material import VOICE, Speak
from turnkit_asr import synthesize


@pytest.fixture
def speak() -> Speak:
    """``speak(text, voice=(name, words per minute))``: a WAV file of ``text`` spoken by espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.skip(
            "espeak-ng is not installed (apt-get install espeak-ng): the tests synthesize their speech"
        )

    def speak_text(text: str, voice: tuple[str, int] = VOICE) -> bytes:
        return synthesize(text, voice=voice[0], speed=voice[1])

    return speak_text
