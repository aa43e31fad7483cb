"""``[plugin.summarizer]``: the summary's size and when to compress."""

from __future__ import annotations

from typing import Literal

import attrs

from .extract import MIN_BUDGET

#: A share of something: more than nothing, at most all of it.
_SHARE = attrs.validators.and_(attrs.validators.gt(0.0), attrs.validators.le(1.0))


@attrs.frozen
class SummarizerSettings:
    """The plugin's table of the agent's configuration.

    ``max_chars`` caps every summary; ``window_share`` caps it further to
    that share of the model's context window (at about four characters a
    token), so a small window is not filled by its own summary.
    ``answer_share`` of a compression summary's budget goes to the newest
    answer (a merge summary gives it three quarters: the answer is the
    child's result). ``compress_at`` is the context window level from which
    the plugin compresses a session after a turn (``never``: it only writes
    the summaries others ask for).
    """

    max_chars: int = attrs.field(default=1500, validator=attrs.validators.ge(MIN_BUDGET))
    window_share: float = attrs.field(default=0.25, validator=_SHARE)
    answer_share: float = attrs.field(default=0.4, validator=_SHARE)
    compress_at: Literal["warn", "critical", "never"] = "warn"
