"""Vector checks and packing, cosine similarity, and the fusion of full-text and vector rankings.

Vectors are stored normalised to unit length, so cosine similarity is a dot
product, and packed as base64 of little-endian float32: a quarter of the
size of a JSON list of numbers and far cheaper to read back, which matters
because every record of a scope is read back for a vector search (and the
store reads the whole value even to filter on its scope).

Full-text scores (bm25) and cosines are on unrelated scales, so a hybrid
search fuses the two rankings by *reciprocal rank* instead of by score: each
list gives a memory ``1 / (RRF_K + rank)``, and the sums rank the union. A
memory both searches find outranks one only one of them finds at the same
place; nothing needs tuning per embedding model.
"""

from __future__ import annotations

import base64
import math
import operator
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

#: The usual constant of reciprocal rank fusion: it damps the weight of the very first ranks.
RRF_K = 60


def unit_vector(answer: Any) -> list[float]:
    """``answer`` (a ``memory_embed`` result) checked and scaled to length 1; ``[]`` for no vector.

    A zero vector is no vector: it is similar to nothing.
    """
    if not isinstance(answer, list | tuple):
        raise TypeError(f"memory_embed must answer a list of numbers, got {type(answer).__name__}")
    for index, number in enumerate(answer):
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise TypeError(f"memory_embed answered {number!r} at [{index}]: not a finite number")
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in answer))
    return [float(x) / norm for x in answer] if norm else []


def pack(unit: Sequence[float]) -> str:
    """A vector as stored: base64 of little-endian float32."""
    packed = array("f", unit)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack(stored: str) -> array[float]:
    """A stored vector back as numbers."""
    unit = array("f", base64.b64decode(stored))
    if sys.byteorder == "big":
        unit.byteswap()
    return unit


def cosine(unit_a: Sequence[float], unit_b: Sequence[float]) -> float | None:
    """The cosine similarity of two unit vectors; ``None`` when their lengths differ."""
    if len(unit_a) != len(unit_b):
        return None
    return float(sum(map(operator.mul, unit_a, unit_b)))


def fuse(rankings: Iterable[Sequence[str]]) -> dict[str, float]:
    """Reciprocal rank fusion of rankings of ids (best first): id → fused score."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return fused
