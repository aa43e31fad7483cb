"""Chat Completions calls over httpx: attempts, retries, and reading the answer.

One ``httpx.AsyncClient`` serves every call of the agent's life, so turns
reuse its connections (no new TCP and TLS handshake per turn); the plugin
closes it when the agent stops (``Plugin.close``). A streamed answer's text
goes to the turn's listener as it arrives; once some of it has, the call is
not retried, since the listener cannot take those words back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from turnkit_hookspecs import Message, ReplyStream

from .errors import CompletionError, server_message
from .names import FunctionNames
from .reply import ReplyBuilder, ReplyFormatError
from .retry import asked_wait, retry_delay, retryable_status
from .settings import OpenAISettings
from .sse import event_data

#: What the API key is replaced by in what the server said (the runtime's marker too).
SECRET_MARK = "[secret]"


class _Failure(Exception):
    """One attempt failed; :meth:`CompletionsClient.complete` decides whether to try again."""

    def __init__(
        self, problem: str, *, status: int | None = None, retryable: bool, asked: float | None = None
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retryable = retryable
        self.asked = asked


class _Listener:
    """The turn's reply stream, counting the chunks that reached someone."""

    def __init__(self, stream: ReplyStream) -> None:
        self._stream = stream
        self.delivered = 0

    async def write(self, text: str) -> None:
        if text and self._stream.active:
            await self._stream.write(text)
            self.delivered += 1


class CompletionsClient:
    """Posts Chat Completions requests to ``settings.base_url`` with ``headers`` (the key among them).

    ``key`` is the API key those headers carry: a server may quote it back
    in an error ("Incorrect API key provided: sk-…"), and what the server
    says goes into the turn's error, its log line and every plugin that
    observes the failure, so the key is replaced by ``[secret]`` first.
    It holds one connection pool until :meth:`aclose`.
    """

    def __init__(
        self,
        settings: OpenAISettings,
        headers: Mapping[str, str],
        logger: logging.Logger,
        key: str | None = None,
    ) -> None:
        self._settings = settings
        self._headers = dict(headers)
        self._logger = logger
        self._key = key
        self._http = httpx.AsyncClient(
            headers=self._headers, timeout=httpx.Timeout(settings.timeout), verify=httpx.create_ssl_context()
        )

    async def aclose(self) -> None:
        """Close the connections; the client takes no calls afterwards."""
        await self._http.aclose()

    async def complete(self, body: Mapping[str, Any], names: FunctionNames, stream: ReplyStream) -> Message:
        """Ask for ``body``'s completion, retrying as the settings say; the answer as a message.

        Raises :class:`CompletionError` when no attempt succeeded.
        """
        settings = self._settings
        url = settings.completions_url
        attempt = 0
        while True:
            attempt += 1
            listener = _Listener(stream)
            try:
                return await self._attempt(body, names, listener)
            except _Failure as failure:
                problem = self._without_key(failure.problem)
                delay, why = self._next_wait(failure, attempt, listener.delivered)
                if delay is None:
                    raise CompletionError(
                        url, problem, status=failure.status, attempts=attempt, why=why
                    ) from failure.__cause__
                retries = settings.max_retries
                self._logger.warning(
                    "POST %s: %s; retry %d of %d in %.2f s", url, problem, attempt, retries, delay
                )
                await asyncio.sleep(delay)

    def _without_key(self, text: str) -> str:
        """``text`` with the API key replaced by ``[secret]``."""
        return text.replace(self._key, SECRET_MARK) if self._key else text

    def _next_wait(self, failure: _Failure, attempt: int, delivered: int) -> tuple[float | None, str]:
        """How long to wait before the next attempt, or ``None`` and why there is none."""
        settings = self._settings
        if not failure.retryable:
            return None, "not retried"
        if delivered:
            chunks = "1 chunk" if delivered == 1 else f"{delivered} chunks"
            return None, f"not retried: {chunks} had already reached the listener"
        if attempt > settings.max_retries:
            return None, f"no retries left, max_retries = {settings.max_retries}"
        delay = retry_delay(attempt, settings.backoff, settings.backoff_max, failure.asked)
        if delay is None:
            return None, f"the server asked to wait {failure.asked:g} s, more than backoff_max"
        return delay, ""

    async def _attempt(self, body: Mapping[str, Any], names: FunctionNames, listener: _Listener) -> Message:
        """One request; the answer, or :class:`_Failure` saying whether to try again."""
        try:
            async with self._http.stream("POST", self._settings.completions_url, json=body) as response:
                if not response.is_success:
                    await response.aread()
                    raise _Failure(
                        server_message(response.content),
                        status=response.status_code,
                        retryable=retryable_status(response.status_code),
                        asked=asked_wait(response.headers),
                    )
                builder = ReplyBuilder(names, self._settings.model)
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    await self._read_stream(response, builder, listener)
                else:  # asked to stream or not, a server may answer whole
                    await listener.write(builder.add_completion(_parse(await response.aread())))
                return builder.build()
        except httpx.TimeoutException as exc:
            problem = f"no answer within {self._settings.timeout:g} s ({type(exc).__name__})"
            raise _Failure(problem, retryable=True) from exc
        except httpx.TransportError as exc:
            raise _Failure(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except (httpx.RequestError, ReplyFormatError) as exc:
            raise _Failure(f"{type(exc).__name__}: {exc}", retryable=False) from exc

    async def _read_stream(
        self, response: httpx.Response, builder: ReplyBuilder, listener: _Listener
    ) -> None:
        """Feed a ``text/event-stream`` answer to ``builder`` until ``[DONE]`` (or its end)."""
        async for data in event_data(response.aiter_lines()):
            if data.strip() == "[DONE]":
                return
            chunk = _parse(data)
            if isinstance(chunk, dict) and chunk.get("error"):
                raise _Failure(server_message(data.encode()), status=response.status_code, retryable=False)
            await listener.write(builder.add_chunk(chunk))


def _parse(text: str | bytes) -> Any:
    """JSON from the server, or :class:`ReplyFormatError` quoting what came instead."""
    try:
        return json.loads(text)
    except ValueError:
        shown = text if isinstance(text, str) else text.decode(errors="replace")
        raise ReplyFormatError(f"the server answered something that is not JSON: {shown[:200]!r}") from None
