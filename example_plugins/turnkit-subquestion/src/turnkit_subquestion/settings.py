"""``[plugin.subquestion]``: how sub-questions are marked, bounded and summarised."""

from __future__ import annotations

from typing import Literal

import attrs


def _not_blank(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be blank, got {value!r}")


@attrs.frozen
class SubquestionSettings:
    """The plugin's table of the agent's configuration.

    ``prefix`` marks a line of an inbound message as a sub-question (leading
    spaces are ignored); at most ``max_questions`` of a message are asked,
    the rest are reported as not asked. ``timeout`` bounds each child turn
    in seconds. ``summary`` says what is merged back: ``answer`` (the
    question and the child's reply, cut to ``max_answer_chars``) or
    ``resolve`` (whatever ``session_compress`` makes of the child session,
    e.g. turnkit-summarizer's summary).
    """

    prefix: str = attrs.field(default="?? ", validator=_not_blank)
    max_questions: int = attrs.field(default=3, validator=attrs.validators.gt(0))
    timeout: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    summary: Literal["answer", "resolve"] = "answer"
    max_answer_chars: int = attrs.field(default=2000, validator=attrs.validators.gt(0))
