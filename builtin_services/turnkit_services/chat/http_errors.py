"""The HTTP API's errors: one JSON body for every failure, in the shape OpenAI's API uses.

``{"error": {"type": "invalid_request_error", "message": "..."}}`` — the
native ``/api`` routes and the OpenAI-compatible ``/v1`` routes answer alike,
so that an OpenAI client shows the message and a script reads one shape.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from turnkit_hookspecs import IdempotencyKeyReused

#: The ``type`` of an error body, by HTTP status (other 4xx are ``invalid_request_error``).
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    500: "server_error",
}
#: The longest a value quoted in an error message gets (its middle is cut).
BRIEF = 200


class ApiError(Exception):
    """A request that cannot be answered; becomes a JSON error response with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_body(status: int, message: str) -> dict[str, dict[str, str]]:
    """The JSON of an error response."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"type": kind, "message": message}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error as a response (also what the middlewares send before any route runs)."""
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def brief(text: str, limit: int = BRIEF) -> str:
    """``text`` cut to about ``limit`` characters, keeping its end when it names a path (``… @ $.text``).

    Error messages quote what the client sent (``got list [1, 1, …]``); a
    body near ``max_body`` must not come back whole in its own error.
    """
    if len(text) <= limit:
        return text
    head, at, where = text.rpartition(" @ ")
    if not at or len(where) > limit // 2:
        head, where = text, ""
    return head[: limit - len(where)] + "…" + (at + where if where else "")


def shown(value: object) -> str:
    """``value`` quoted for an error message: its ``repr``, which escapes what is not printable, cut short."""
    return brief(repr(value), 60)


def internal_error(exc: BaseException) -> JSONResponse:
    """The 500 for an error nobody expected: its type only, as its text may say more than a client should."""
    return error_response(500, f"internal error ({type(exc).__name__}); the agent's log has the details")


def failure_message(exc: BaseException) -> str:
    """A failure of the chat path, worded for the client."""
    return f"the message could not be handled: {type(exc).__name__}: {exc}"


def key_reused(exc: BaseException) -> bool:
    """Whether ``exc`` is the contract's refusal of an idempotency key used for another session."""
    return isinstance(exc, IdempotencyKeyReused)


def chat_failure(exc: BaseException) -> ApiError:
    """The error response for a chat path that raised ``exc``.

    A reused idempotency key is the client's mistake, never a retry: 409,
    saying so (the message names both sessions). Anything else is a 500.
    """
    if key_reused(exc):
        return ApiError(409, f"Idempotency-Key reused for another session: {exc}")
    return ApiError(500, failure_message(exc))


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette handler for :class:`ApiError` raised by a route or while reading the body."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no such route, method not allowed) as JSON too."""
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {brief(request.scope['path'], 100)}: {exc.detail}"
    return error_response(exc.status_code, message, dict(exc.headers or {}))
