"""Reading request bodies: JSON that names what is wrong with it, and where.

The size limit is enforced while the body is received
(:class:`~turnkit_services.chat.http_middleware.BodyLimit`); here a body
that is not JSON, or not of the expected shape, becomes a 400 whose
message says which part is wrong (``$.text: expected str, got int 3``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from starlette.requests import Request
from turnkit_hookspecs import PayloadError, structure

from .http_errors import ApiError

T = TypeVar("T")


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
