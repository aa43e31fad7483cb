"""When to try a request again, and how long to wait first.

A retry is worth it when the server may answer next time: it could not be
reached, it did not answer in time, it said ``429 Too Many Requests`` or it
failed with a 5xx. The wait doubles from ``backoff`` on each retry, capped
at ``backoff_max``, and is drawn between half and all of that (jitter), so
that agents refused together do not come back together. A server that says
how long to wait (``Retry-After``, or OpenAI's ``retry-after-ms``) is not
asked sooner; one asking for more than ``backoff_max`` is not asked again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status may go away on its own: 429 and the 5xx."""
    return status == 429 or status >= 500


def asked_wait(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """The seconds a response asks the client to wait, or ``None`` when it does not say.

    ``headers`` is looked up by lower-case names (httpx's headers match any
    case). ``Retry-After`` may hold seconds or an HTTP date.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass  # unreadable: fall back to Retry-After
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: as if it said nothing


def retry_delay(
    retry: int,
    backoff: float,
    backoff_max: float,
    asked: float | None = None,
    draw: Callable[[], float] = random.random,
) -> float | None:
    """The wait before retry number ``retry`` (1 for the first), or ``None`` to give up.

    ``asked`` is what the server asked for (:func:`asked_wait`); ``draw``
    returns a number in [0, 1) for the jitter.
    """
    if asked is not None and asked > backoff_max:
        return None
    delay = min(backoff_max, backoff * 2.0 ** (retry - 1)) * (0.5 + draw() / 2)
    return max(delay, asked or 0.0)
