"""Reading requests: JSON bodies that name what is wrong with them, and the ``Idempotency-Key`` header.

The size limit is enforced while the body is received
(:class:`~turnkit_services.chat.http_middleware.BodyLimit`); here a body
that is not JSON, or not of the expected shape, becomes a 400 whose
message says which part is wrong (``$.text: expected str, got int 3``).
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from starlette.requests import Request
from turnkit_hookspecs import PayloadError, structure

from .http_errors import ApiError

T = TypeVar("T")

#: The request header that makes a turn-running request safe to retry.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The longest idempotency key accepted.
MAX_IDEMPOTENCY_KEY = 200
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON."""
    body = await request.body()
    if not body.strip():
        raise ApiError(400, "empty request body: a JSON object is expected")
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc


async def read_payload(request: Request, cls: type[T]) -> T:
    """The request body as a ``cls`` (an attrs class; unknown keys are refused)."""
    try:
        return structure(await read_json(request), cls)
    except PayloadError as exc:
        raise ApiError(400, "invalid request body: " + "; ".join(exc.problems)) from exc


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (1 to 200 visible ASCII characters), or ``None`` if it has none.

    The key is checked before anything runs, so that a malformed one is a
    400 and never a turn: a key the client cannot send back byte for byte
    (spaces, which proxies may trim, or non-ASCII) could never make a retry
    safe. A header sent twice is refused too, since its two values cannot
    both name the message.
    """
    values = request.headers.getlist(IDEMPOTENCY_HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"{IDEMPOTENCY_HEADER}: sent {len(values)} times, expected once")
    key = values[0]
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400, f"{IDEMPOTENCY_HEADER} too long: {len(key)} characters, at most {MAX_IDEMPOTENCY_KEY}"
        )
    if not _VISIBLE_ASCII.fullmatch(key):
        raise ApiError(
            400,
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            " (no spaces), e.g. a UUID",
        )
    return key
