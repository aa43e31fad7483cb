"""Ids of sessions and turns: random, so that agents sharing a store never collide."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh session or turn id (32 hex digits)."""
    return uuid.uuid4().hex
