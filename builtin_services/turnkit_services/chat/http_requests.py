"""Reading requests: JSON bodies that name what is wrong with them, and the text of paths and headers.

The size and time limits are enforced while the body is received
(:class:`~turnkit_services.chat.http_middleware.BodyLimits`); here a body
must be declared JSON (415 otherwise), be UTF-8, and parse as strict JSON
(:mod:`~turnkit_services.chat.http_json`), else it is a 400 whose message
says which part is wrong (``$.text: expected str, got int 3``). Chat keys,
session ids and the ``Idempotency-Key`` header are checked as well. All of
this happens before a route acts, so that a refused request leaves nothing
in the store.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from starlette.requests import Request
from turnkit_hookspecs import PayloadError, structure

from .http_errors import ApiError, brief
from .http_json import JsonRefused, loads

T = TypeVar("T")

#: The request header that makes a turn-running request safe to retry.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The longest idempotency key accepted.
MAX_IDEMPOTENCY_KEY = 200
#: The longest chat key accepted (in a path or a header).
MAX_CHAT_KEY = 200
#: The longest session id, or ``kind``, accepted in a path or a query (ids are 32 characters).
MAX_NAME = 200
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CHARSET = re.compile(r"""charset\s*=\s*"?([^";\s]*)""", re.IGNORECASE)
_SEND_JSON = "send 'Content-Type: application/json'"


async def read_json(request: Request) -> Any:
    """The request body parsed as strict JSON, once its ``Content-Type`` says it is JSON."""
    _json_content_type(request.headers.get("content-type"))
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise ApiError(
            400, f"request body is not UTF-8 text: invalid byte 0x{byte:02x} at byte {exc.start}"
        ) from exc
    if not text.strip():
        raise ApiError(400, "empty request body: a JSON object is expected")
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    except JsonRefused as exc:
        raise ApiError(400, f"invalid request body: {exc}") from exc


async def read_payload(request: Request, cls: type[T]) -> T:
    """The request body as a ``cls`` (an attrs class; unknown keys are refused)."""
    try:
        return structure(await read_json(request), cls)
    except PayloadError as exc:
        raise ApiError(400, "invalid request body: " + "; ".join(brief(p) for p in exc.problems)) from exc


def _json_content_type(header: str | None) -> None:
    """Refuse (415) a body not declared JSON in UTF-8.

    Not only for tidiness: a web page may send a browser's "simple"
    request, a form or ``text/plain`` body, to any address without asking
    it first, so a JSON body in such a request would let any site the
    user visits talk to an agent on their machine. A JSON content type
    makes the browser ask first (a CORS preflight), which this server never
    grants.
    """
    if header is None:
        raise ApiError(415, f"missing Content-Type: {_SEND_JSON}")
    media_type, _, parameters = header.partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ApiError(415, f"Content-Type {brief(media_type, 60)!r} is not JSON: {_SEND_JSON}")
    charset = _CHARSET.search(parameters)
    if charset is not None and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise ApiError(
            415, f"Content-Type charset {brief(charset.group(1), 40)!r} is not UTF-8: send UTF-8 JSON"
        )


def plain_text(value: str, what: str, limit: int) -> str:
    """``value`` (a path segment, a query parameter, a header) if short and free of control characters.

    A NUL could not be stored (PostgreSQL refuses it), and other control
    characters in a chat key would travel into logs and terminals.
    """
    if len(value) > limit:
        raise ApiError(400, f"{what} too long: {len(value)} characters, at most {limit}")
    found = _CONTROL.search(value)
    if found is not None:
        raise ApiError(
            400, f"{what}: control character U+{ord(found.group()):04X} at character {found.start()}"
        )
    return value


def chat_key(request: Request) -> str:
    """The ``{chat}`` of the request's path."""
    return plain_text(request.path_params["chat"], "chat key", MAX_CHAT_KEY)


def session_id(request: Request) -> str:
    """The ``{session_id}`` of the request's path."""
    return plain_text(request.path_params["session_id"], "session id", MAX_NAME)


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
