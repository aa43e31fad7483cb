"""The OpenAI-compatible endpoints under ``/v1``, so that any OpenAI client can talk to the agent.

``POST /v1/chat/completions`` runs **one turn** in a turnkit session: an
OpenAI client resends the whole conversation with every request, but the
session already holds its history, so only the last message (which must be
the user's) becomes the turn's inbound message; the earlier ones only serve
to find the conversation again. The conversation key (the chat, as in
``/api/chats/{chat}``) is, in this order:

1. the ``X-Turnkit-Chat`` request header, when the client sets one;
2. otherwise ``openai-`` and a digest of the ``user`` field and of the
   messages up to and including the first user message — which a client
   resends unchanged on every request of one conversation, so that the
   conversation lands in the same session each time.

Two conversations opening with the same words (and the same ``user``) share
a session under rule 2; clients that can set a header should use rule 1.
The key used is returned in the ``X-Turnkit-Chat`` response header. The
``model`` asked for is not checked: the agent answers, under its own id,
which ``GET /v1/models`` lists.

An ``Idempotency-Key`` request header makes a completion safe to retry: a
retry that resends the same request (same messages and ``user``, same
``X-Turnkit-Chat`` if any) finds the same conversation by the rules above,
hence the same session, and gets the first request's turn instead of a
second one. A streamed retry whose turn ran elsewhere gets the whole reply
as one chunk.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from turnkit_hookspecs import (
    Base64Source,
    Block,
    ChannelMessage,
    ImageBlock,
    Message,
    Principal,
    Source,
    TextBlock,
    UrlSource,
)

from .channel import ChatOutcome
from .http_api import ANONYMOUS
from .http_errors import ApiError, chat_failure, error_body, shown
from .http_requests import MAX_CHAT_KEY, idempotency_key, plain_text, read_json
from .http_streaming import KEEPALIVE, TurnEvent, first_in, sse, sse_response, turn_events

if TYPE_CHECKING:
    from .http import HttpChannel

#: The request header naming the conversation; echoed in every response.
CHAT_HEADER = "X-Turnkit-Chat"
#: The end of an OpenAI stream.
DONE = "data: [DONE]\n\n"
#: The message roles of the OpenAI chat API.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class OpenAIApi:
    """The ``/v1`` routes of one HTTP channel."""

    def __init__(self, channel: HttpChannel) -> None:
        self.channel = channel
        self.created = int(time.time())

    @property
    def model(self) -> str:
        """The one model served: the agent, by its id."""
        return self.channel.chat.context.agent_id

    def routes(self) -> list[Route]:
        """The routes, for the channel's Starlette app."""
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model}", self.read_model, methods=["GET"]),
            Route("/v1/chat/completions", self.complete, methods=["POST"]),
        ]

    async def list_models(self, request: Request) -> Response:
        """The agent, as the only model."""
        return JSONResponse({"object": "list", "data": [self._model_json()]})

    async def read_model(self, request: Request) -> Response:
        """The agent as a model, if asked for by its id."""
        if request.path_params["model"] != self.model:
            raise ApiError(
                404, f"no model {shown(request.path_params['model'])}: this agent is {self.model!r}"
            )
        return JSONResponse(self._model_json())

    def _model_json(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": self.created, "owned_by": "turnkit"}

    async def complete(self, request: Request) -> Response:
        """One turn of the conversation; a ``chat.completion``, or ``chat.completion.chunk`` events."""
        key = idempotency_key(request)
        payload = await read_json(request)
        if not isinstance(payload, dict):
            raise ApiError(400, f"invalid request body: expected an object, got {type(payload).__name__} @ $")
        _refuse_unsupported(payload)
        user = _optional(payload, "user", str)
        messages = _messages(payload)
        chat = plain_text(
            request.headers.get(CHAT_HEADER) or conversation_key(user, messages), CHAT_HEADER, MAX_CHAT_KEY
        )
        inbound = ChannelMessage(
            channel=self.channel.name,
            chat_id=chat,
            principal=Principal(self.channel.name, user or ANONYMOUS),
            message=inbound_message(messages),
            metadata={"api": "openai"},
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if _optional(payload, "stream", bool):
            events = turn_events(self.channel, inbound, key)
            if key is not None:
                events = await first_in(events)
            response = sse_response(self._chunks(completion_id, events))
            response.headers[CHAT_HEADER] = chat
            return response
        outcome = await self.channel.turn(inbound, key)
        turn = outcome.result.turn
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": outcome.reply.text},
            "finish_reason": _finish_reason(outcome),
        }
        headers = {
            CHAT_HEADER: chat,
            "X-Turnkit-Session": outcome.session_id,
            "X-Turnkit-Turn": turn.turn_id,
            "X-Turnkit-Status": turn.status,
        }
        body = {**self._head(completion_id, "chat.completion"), "choices": [choice]}
        return JSONResponse(body, headers=headers)

    async def _chunks(self, completion_id: str, events: AsyncIterator[TurnEvent]) -> AsyncIterator[str]:
        """The reply as ``chat.completion.chunk`` events: the role, the text as it comes, the end.

        What was not streamed (a denied or failed turn's polite reply, or a
        reply produced in another process) goes out as one chunk before the end.
        """
        head = self._head(completion_id, "chat.completion.chunk")

        def chunk(delta: Mapping[str, str], finish_reason: str | None = None) -> str:
            return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

        yield chunk({"role": "assistant", "content": ""})
        streamed: list[str] = []
        outcome: ChatOutcome | None = None
        try:
            async for item in events:
                if item is None:
                    yield KEEPALIVE
                elif isinstance(item, ChatOutcome):
                    outcome = item
                else:
                    streamed.append(item)
                    yield chunk({"content": item})
        except Exception as exc:
            error = chat_failure(exc)
            yield sse(error_body(error.status, error.message))
            return
        assert outcome is not None
        rest = unsent(outcome.reply.text, "".join(streamed))
        if rest:
            yield chunk({"content": rest})
        yield chunk({}, _finish_reason(outcome))
        yield DONE

    def _head(self, completion_id: str, kind: str) -> dict[str, Any]:
        return {"id": completion_id, "object": kind, "created": int(time.time()), "model": self.model}


def conversation_key(user: str | None, messages: Sequence[Mapping[str, Any]]) -> str:
    """``openai-`` and a digest of ``user`` and the messages up to the first user message."""
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    opening = [[m["role"], m.get("content")] for m in messages[: first_user + 1]]
    material = json.dumps([user, opening], sort_keys=True, ensure_ascii=False)
    return "openai-" + hashlib.sha256(material.encode()).hexdigest()[:24]


def inbound_message(messages: Sequence[Mapping[str, Any]]) -> Message:
    """The last message of the request, which must be the user's, as a turnkit message."""
    where = f"$.messages[{len(messages) - 1}]"
    last = messages[-1]
    if last["role"] != "user":
        raise ApiError(400, f"the last message must be the user's, got role {last['role']!r} @ {where}.role")
    blocks = _blocks(last.get("content"), f"{where}.content")
    if not any((isinstance(b, TextBlock) and b.text.strip()) or isinstance(b, ImageBlock) for b in blocks):
        raise ApiError(400, f"empty message: the last user message holds no text or image @ {where}.content")
    return Message("user", blocks)


def unsent(reply: str, streamed: str) -> str:
    """What of ``reply`` the client has not been sent yet, given the chunks ``streamed``.

    A denied or failed turn streams nothing, so its polite reply goes out
    whole. When ``chat_outbound`` rewrote a reply already streamed, the
    rewrite cannot be taken back: nothing more is sent (the stored reply is
    the model's, as streamed).
    """
    return reply[len(streamed) :] if reply.startswith(streamed) else ""


def _refuse_unsupported(payload: Mapping[str, Any]) -> None:
    """Refuse a wrong ``model``, and what a turn cannot do rather than silently ignore it."""
    _optional(payload, "model", str)
    if payload.get("n") not in (None, 1):
        raise ApiError(400, f"n={shown(payload['n'])} is not supported: one choice per request @ $.n")
    if payload.get("tools"):
        raise ApiError(
            400, "client-side tools are not supported: the agent runs its own tools in its turns @ $.tools"
        )


def _finish_reason(outcome: ChatOutcome) -> str:
    return "content_filter" if outcome.status == "denied" else "stop"


def _messages(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list @ $.messages")
    for index, message in enumerate(messages):
        where = f"$.messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"expected an object, got {type(message).__name__} @ {where}")
        if message.get("role") not in ROLES:
            raise ApiError(
                400,
                f"role must be one of {', '.join(ROLES)}, got {shown(message.get('role'))} @ {where}.role",
            )
    if not any(m["role"] == "user" for m in messages):
        raise ApiError(400, "no user message in 'messages' @ $.messages")
    return messages


def _blocks(content: Any, where: str) -> list[Block]:
    if isinstance(content, str):
        return [TextBlock(content)]
    if not isinstance(content, list):
        raise ApiError(400, f"expected a string or a list of content parts @ {where}")
    blocks: list[Block] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError(400, f"expected a string @ {at}.text")
            blocks.append(TextBlock(part["text"]))
        elif kind == "image_url":
            blocks.append(ImageBlock(_image_source(part.get("image_url"), f"{at}.image_url")))
        else:
            raise ApiError(
                400, f"unsupported content part {shown(kind)} (supported: text, image_url) @ {at}.type"
            )
    return blocks


def _image_source(image: Any, where: str) -> Source:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise ApiError(400, f"expected {{'url': '...'}} @ {where}")
    if url.startswith("data:"):
        header, _, data = url[len("data:") :].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise ApiError(400, f"a data URL must be base64: data:<media type>;base64,<data> @ {where}.url")
        return Base64Source(media_type, data)
    return UrlSource(url)


def _optional(payload: Mapping[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, f"expected {kind.__name__}, got {type(value).__name__} {shown(value)} @ $.{name}")
    return value
