"""What the plugin raises: a request that finally failed, a key that is missing."""

from __future__ import annotations

import json


class MissingKeyError(LookupError):
    """``api_key_env`` names a variable the agent's environment does not hold (raised at start)."""


class CompletionError(Exception):
    """A Chat Completions request failed for good; the turn fails with this message.

    The message names the endpoint, the HTTP status when there was one, what
    the server said, and how many attempts were made, e.g.
    ``POST https://api.example.com/v1/chat/completions: HTTP 401: Incorrect
    API key provided [1 attempt, not retried]``.
    """

    def __init__(self, url: str, problem: str, *, status: int | None = None, attempts: int, why: str) -> None:
        self.url = url
        self.status = status
        self.problem = problem
        self.attempts = attempts
        status_text = f"HTTP {status}: " if status is not None else ""
        plural = "" if attempts == 1 else "s"
        super().__init__(f"POST {url}: {status_text}{problem} [{attempts} attempt{plural}, {why}]")


def server_message(body: bytes) -> str:
    """What an error response says, from the usual JSON shapes or else the text itself.

    OpenAI and vLLM send ``{"error": {"message": …}}``, llama.cpp and Ollama
    variants ``{"error": "…"}`` or ``{"message": …}``, FastAPI-based servers
    ``{"detail": …}``.
    """
    text = body.decode(errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for found in (error, payload.get("message"), payload.get("detail")):
            if found:
                return found if isinstance(found, str) else json.dumps(found)
    if not text:
        return "(empty body)"
    return text if len(text) <= 300 else text[:300] + "…"
