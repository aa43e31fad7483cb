"""``[service.memory]``: recall into the prompt, scopes, and the limits of what is stored."""

from __future__ import annotations

import attrs
from attrs.validators import ge, gt, le

from .model import SCOPES, Scope


@attrs.frozen
class MemorySettings:
    """``[service.memory]``.

    ``recall`` switches on recall into the prompt: each turn, up to
    ``recall_limit`` memories matching the inbound message, searched in
    ``recall_scopes`` of that turn, are added as one system message before
    it. ``turn_scope`` is where a memory stored during a turn goes when the
    caller names no scope (outside a turn it is always ``agent``).
    ``min_similarity`` is the cosine a vector hit must exceed to count
    (raise it for real embedding models, where unrelated texts still score
    0.1 to 0.3). ``max_chars`` bounds one memory's text (at most 10⁷);
    ``recall_limit`` is at most 1000.
    """

    recall: bool = False
    recall_limit: int = attrs.field(default=3, validator=[ge(1), le(1000)])
    recall_scopes: list[Scope] = attrs.field(factory=lambda: list(SCOPES))
    turn_scope: Scope = "session"
    min_similarity: float = attrs.field(default=0.0, validator=[ge(-1.0), le(1.0)])
    max_chars: int = attrs.field(default=4000, validator=[gt(0), le(10_000_000)])
