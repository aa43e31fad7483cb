"""WAV files in, 16 kHz mono 16-bit PCM out — or an AudioError saying what is wrong with the file."""

from __future__ import annotations

import struct
from array import array

import pytest
from material import wav_file
from turnkit_asr import AudioError, read_wav


def samples_of(pcm: bytes) -> list[int]:
    return list(array("h", pcm))


def test_16k_mono_16_bit_passes_through_unchanged() -> None:
    samples = [0, 1000, -1000, 32767, -32768] * 100
    assert samples_of(read_wav(wav_file(samples), 60)) == samples


def test_channels_are_mixed_down_to_their_average() -> None:
    stereo = [1000, 3000] * 160
    assert set(samples_of(read_wav(wav_file(stereo, channels=2), 60))) == {2000}
    four = [100, 200, 300, 400] * 160
    assert set(samples_of(read_wav(wav_file(four, channels=4), 60))) == {250}


@pytest.mark.parametrize(
    ("width", "sample", "expected"),
    [
        (1, 128 + 64, 64 * 256),  # 8-bit WAV is unsigned, centred on 128
        (3, 0x123456, 0x1234),
        (4, -0x40000000, -0x4000),
    ],
)
def test_other_sample_widths_are_scaled_to_16_bits(width: int, sample: int, expected: int) -> None:
    assert set(samples_of(read_wav(wav_file([sample] * 320, width=width), 60))) == {expected}


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_other_rates_are_resampled_to_16_khz(rate: int) -> None:
    one_second = wav_file([500] * rate, rate=rate)
    pcm = samples_of(read_wav(one_second, 60))
    assert abs(len(pcm) - 16_000) <= 1
    assert set(pcm[1:-1]) == {500}


def test_a_recording_over_max_seconds_is_refused_not_cut() -> None:
    two_seconds = wav_file([0] * 32_000)
    assert len(read_wav(two_seconds, 2)) == 64_000
    with pytest.raises(AudioError, match=r"lasts more than 1\.5 s, the longest this agent transcribes"):
        read_wav(two_seconds, 1.5)


def test_the_length_is_counted_from_the_samples_not_the_header() -> None:
    """A streamed WAV's header may claim a huge data size it does not hold (espeak-ng --stdout does)."""
    data = bytearray(wav_file([7] * 16_000))
    data_size_at = data.index(b"data") + 4
    data[data_size_at : data_size_at + 4] = struct.pack("<I", 0x7FFFFFF0)
    assert samples_of(read_wav(bytes(data), 2)) == [7] * 16_000


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"OggS\x00\x02" + bytes(40), "Ogg (Opus or Vorbis) audio"),
        (b"ID3\x04\x00" + bytes(40), "MP3 audio"),
        (b"fLaC" + bytes(40), "FLAC audio"),
        (bytes(4) + b"ftypM4A " + bytes(40), "MP4/M4A audio"),
        (b"hello, this is text", "not a WAV file"),
    ],
)
def test_other_formats_are_named_with_the_conversion_to_use(data: bytes, named: str) -> None:
    with pytest.raises(AudioError) as raised:
        read_wav(data, 60)
    assert str(raised.value) == (
        f"{named}: only WAV (PCM) is transcribed; "
        "convert it to WAV first, e.g. ffmpeg -i voice.ogg -ac 1 -ar 16000 voice.wav"
    )


def test_a_wav_in_floating_point_is_refused() -> None:
    data = bytearray(wav_file([0] * 100))
    data[20:22] = struct.pack("<H", 3)  # WAVE_FORMAT_IEEE_FLOAT
    with pytest.raises(
        AudioError, match=r"cannot be read \(unknown format: 3\); only uncompressed integer PCM"
    ):
        read_wav(bytes(data), 60)


def test_a_damaged_wav_is_refused() -> None:
    with pytest.raises(AudioError, match="a WAV file that cannot be read"):
        read_wav(wav_file([0] * 100)[:30], 60)


def test_a_wav_without_samples_is_refused() -> None:
    with pytest.raises(AudioError, match="holds no sound"):
        read_wav(wav_file([]), 60)
