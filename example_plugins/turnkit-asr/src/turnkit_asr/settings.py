"""The ``[plugin.asr]`` table of the agent's configuration file."""

from __future__ import annotations

import attrs
from attrs import validators


def _tuple(value: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class ASRSettings:
    """What the plugin does with voice messages; every key is optional.

    ``max_seconds`` — longer recordings are not transcribed (the message gets
    a note saying so). ``prefix`` — what the transcript is introduced with in
    the message the model sees. ``keep_audio`` — keep the attachment next to
    its transcript instead of replacing it. ``phrases`` — when given, the
    recognizer only ever hears one of these phrases (voice commands), which
    makes it far more accurate on them. ``workers`` — recognitions that may
    run at once, each in a process of its own (about 110 MB each).
    """

    max_seconds: float = attrs.field(default=60.0, validator=validators.gt(0))
    prefix: str = "[voice message] "
    keep_audio: bool = False
    phrases: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    workers: int = attrs.field(default=1, validator=validators.ge(1))
