"""From an attachment's bytes to what the recognizer takes: 16 kHz mono 16-bit PCM.

Only WAV holding integer PCM is read — 8, 16, 24 or 32 bits, any sample
rate, any number of channels — because the standard library can. Compressed
formats (OGG/Opus voice notes, MP3, M4A, FLAC, WebM) would need a decoder
such as ffmpeg; they are refused with the command that converts them.

The conversion uses :mod:`audioop` (C code, milliseconds for a minute of
audio): part of the standard library up to Python 3.12, and the
``audioop-lts`` distribution — a dependency from 3.13 on — after that.
"""

from __future__ import annotations

import io
import math
import warnings
import wave
from array import array

with warnings.catch_warnings():
    # deprecated in 3.11 and 3.12 only because it leaves the standard library in 3.13;
    # audioop-lts provides the same module from then on
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

#: What the recognizer's acoustic model was trained on.
SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2
#: How a format shows itself in its first bytes, for naming what was sent instead of WAV.
_SIGNATURES = {
    b"OggS": "Ogg (Opus or Vorbis)",
    b"fLaC": "FLAC",
    b"ID3": "MP3",
    b"\x1aE\xdf\xa3": "WebM/Matroska",
    b"#!AMR": "AMR",
}
CONVERT_HINT = "convert it to WAV first, e.g. ffmpeg -i voice.ogg -ac 1 -ar 16000 voice.wav"


class AudioError(ValueError):
    """Why the sender's audio cannot be transcribed (the recognizer is not at fault)."""


def format_name(data: bytes) -> str | None:
    """The name of a known non-WAV audio format ``data`` starts with, if any."""
    if data[4:8] == b"ftyp":
        return "MP4/M4A"
    if data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "MP3"
    return next((name for magic, name in _SIGNATURES.items() if data.startswith(magic)), None)


def read_wav(data: bytes, max_seconds: float) -> bytes:
    """The audio of a WAV file as 16 kHz mono 16-bit little-endian PCM.

    Raises :class:`AudioError` when ``data`` is not WAV, is WAV in a format
    other than integer PCM, is damaged, or lasts longer than ``max_seconds``
    (refused, not cut: a transcript of the first minute would read like the
    whole message). The length is counted from the samples present, so a
    header claiming more or less than there is cannot mislead it.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        found = format_name(data)
        what = f"{found} audio" if found else "not a WAV file"
        raise AudioError(f"{what}: only WAV (PCM) is transcribed; {CONVERT_HINT}")
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            limit = math.floor(max_seconds * rate)
            frames = wav.readframes(limit + 1)
    except (wave.Error, EOFError) as exc:
        detail = str(exc) or "it is cut short"  # EOFError comes without a message
        raise AudioError(
            f"a WAV file that cannot be read ({detail}); only uncompressed integer PCM is"
        ) from exc
    if not 1 <= width <= 4 or channels < 1 or rate < 1:
        raise AudioError(f"a WAV file with {channels} channels of {width}-byte samples at {rate} Hz")
    frame_size = width * channels
    count = len(frames) // frame_size
    if count > limit:
        raise AudioError(f"it lasts more than {max_seconds:g} s, the longest this agent transcribes")
    if count == 0:
        raise AudioError("the WAV file holds no sound")
    return to_recognizer_pcm(frames[: count * frame_size], channels, width, rate)


def to_recognizer_pcm(frames: bytes, channels: int, width: int, rate: int) -> bytes:
    """Interleaved integer PCM (any width, channels, rate) as 16 kHz mono 16-bit."""
    if width == 1:  # 8-bit WAV is unsigned; audioop works on signed samples
        frames = audioop.bias(frames, 1, -128)
    if width != SAMPLE_WIDTH:
        frames = audioop.lin2lin(frames, width, SAMPLE_WIDTH)
    if channels > 1:
        frames = mix_down(frames, channels)
    if rate != SAMPLE_RATE:
        # linear interpolation without a low-pass filter; measured on the benchmark's speech
        # against pocketsphinx's own front end at the file's rate: 0.72 WER against 0.79
        frames, _ = audioop.ratecv(frames, SAMPLE_WIDTH, 1, rate, SAMPLE_RATE, None)
    return frames


def mix_down(frames: bytes, channels: int) -> bytes:
    """The average of ``channels`` interleaved 16-bit channels."""
    samples = array("h", frames)
    mixed = b""
    for channel in range(channels):
        part = audioop.mul(samples[channel::channels].tobytes(), SAMPLE_WIDTH, 1 / channels)
        mixed = audioop.add(mixed, part, SAMPLE_WIDTH) if mixed else part
    return mixed
