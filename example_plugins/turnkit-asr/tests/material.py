"""Test material built in the tests themselves: WAV files, voice messages, espeak-ng voices."""

from __future__ import annotations

import base64
import io
import wave
from array import array
from collections.abc import Callable, Sequence

from turnkit_hookspecs import AttachmentBlock, Base64Source, Message, TextBlock

#: A voice and speed measured to be recognized well (benchmarks/quality.py), and a second one.
VOICE = ("en-us+klatt4", 130)
OTHER_VOICE = ("en-us+f3", 160)

#: What the ``speak`` fixture gives: ``speak(text, voice=VOICE)`` -> a WAV file.
Speak = Callable[..., bytes]


def wav_file(samples: Sequence[int], *, rate: int = 16_000, channels: int = 1, width: int = 2) -> bytes:
    """A WAV file holding ``samples`` (interleaved, already in the sample format ``width`` says)."""
    if width == 1:
        data = bytes(samples)
    elif width == 3:
        data = b"".join(s.to_bytes(3, "little", signed=True) for s in samples)
    else:
        data = array({2: "h", 4: "i"}[width], samples).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data)
    return buffer.getvalue()


def voice_message(
    data: bytes, *, text: str | None = None, name: str = "voice.wav", media_type: str = "audio/wav"
) -> Message:
    """A user message carrying ``data`` as an inline attachment, after ``text`` if given."""
    attachment = AttachmentBlock("file", name, Base64Source(media_type, base64.b64encode(data).decode()))
    blocks = [TextBlock(text), attachment] if text is not None else [attachment]
    return Message("user", blocks)
