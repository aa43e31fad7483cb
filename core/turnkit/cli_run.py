"""How a command runs the runtime's coroutines, and reports the runtime's refusals.

Every failure a command reports is one line in words (``Error: …`` on
stderr, exit 1): drivers' messages that span lines are joined, and the
runtime's errors name what is wrong themselves, so no exception type or
``repr`` is shown. Only ``click`` is imported here; the runtime when a
command runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

T = TypeVar("T")


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks made single spaces."""
    return " ".join(text.split())


def run(work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``work(*args)`` on a fresh event loop; a :class:`~turnkit.errors.TurnkitError` is a CLI error."""
    from .errors import TurnkitError

    try:
        return asyncio.run(work(*args))
    except TurnkitError as exc:
        raise click.ClickException(one_line(str(exc))) from exc
