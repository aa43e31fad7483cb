"""Ids of sessions and turns: random, so that agents sharing a store never collide."""

from __future__ import annotations

import os


def new_id() -> str:
    """A fresh session or turn id: 32 hex digits of 128 random bits (a ``uuid4`` spends six
    of them on its version and costs a UUID object per turn for nothing)."""
    return os.urandom(16).hex()
