"""The OpenAI-compatible endpoints under ``/v1``, so that any OpenAI client can talk to the agent.

``POST /v1/chat/completions`` runs **one turn** in a turnkit session: an
OpenAI client resends the whole conversation with every request, but the
session already holds its history, so only the last message (which must be
the user's) becomes the turn's inbound message; the earlier ones find the
conversation again, and its ``system`` messages are its instructions. The
conversation (the chat, as in ``/api/chats/{chat}``) is:

1. the ``X-Turnkit-Chat`` request header, when the client sets one;
2. otherwise the session whose transcript is exactly the request's earlier
   messages, a fork of a session at the point where they leave it, or a
   new session (:mod:`~turnkit_services.chat.conversations`).

The chat used is returned in the ``X-Turnkit-Chat`` response header. The
``model`` asked for must be one the agent's model serves (the
``model_names`` point), which ``GET /v1/models`` lists; any other is a 404
in OpenAI's shape.

An ``Idempotency-Key`` request header makes a completion safe to retry: a
retry that resends the same request (same messages and ``user``, same
``X-Turnkit-Chat`` if any) reaches the same session, and gets the first
request's turn instead of a second one. A streamed retry whose turn ran
elsewhere gets the whole reply as one chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HttpRequest
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
from .conversations import Conversation, Conversations, Request
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
        self.conversations = Conversations(channel.chat, channel.name)

    async def models(self) -> list[str]:
        """The names the agent's model serves, its default first (the ``model_names`` point)."""
        names: list[str] = await self.channel.chat.context.plugins.resolve("model_names")
        return names

    def routes(self) -> list[Route]:
        """The routes, for the channel's Starlette app."""
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model}", self.read_model, methods=["GET"]),
            Route("/v1/chat/completions", self.complete, methods=["POST"]),
        ]

    async def list_models(self, request: HttpRequest) -> Response:
        """The models the agent's model serves."""
        return JSONResponse({"object": "list", "data": [self._model_json(n) for n in await self.models()]})

    async def read_model(self, request: HttpRequest) -> Response:
        """One of them, by name."""
        name = request.path_params["model"]
        if name not in await self.models():
            return model_not_found(name)
        return JSONResponse(self._model_json(name))

    def _model_json(self, name: str) -> dict[str, Any]:
        owner = self.channel.chat.context.agent_id
        return {"id": name, "object": "model", "created": self.created, "owned_by": owner}

    async def complete(self, request: HttpRequest) -> Response:
        """One turn of the conversation; a ``chat.completion``, or ``chat.completion.chunk`` events."""
        key = idempotency_key(request)
        payload = await read_json(request)
        if not isinstance(payload, dict):
            raise ApiError(400, f"invalid request body: expected an object, got {type(payload).__name__} @ $")
        _refuse_unsupported(payload)
        user = _optional(payload, "user", str)
        stream = _optional(payload, "stream", bool)
        messages = _messages(payload)
        message = inbound_message(messages)
        pinned = request.headers.get(CHAT_HEADER)
        if pinned is not None:
            pinned = plain_text(pinned, CHAT_HEADER, MAX_CHAT_KEY)
        served = await self.models()
        model = _optional(payload, "model", str)
        if model is None:
            model = served[0] if served else ""
        if model not in served:
            return model_not_found(model)
        conversation, inbound = await self._conversation(user, messages, message, pinned, key)
        head = self._head(f"chatcmpl-{uuid.uuid4().hex}", model)
        if stream:
            events = turn_events(self.channel, inbound, key)
            if key is not None:
                events = await first_in(events)
            response = sse_response(self._chunks(head, conversation, events))
            response.headers[CHAT_HEADER] = conversation.chat
            return response
        outcome = await self.channel.turn(inbound, key)
        turn = outcome.result.turn
        await self.conversations.record(conversation, outcome.session_id, turn.turn_id, outcome.reply.text)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": outcome.reply.text},
            "finish_reason": _finish_reason(outcome),
        }
        headers = {
            CHAT_HEADER: conversation.chat,
            "X-Turnkit-Session": outcome.session_id,
            "X-Turnkit-Turn": turn.turn_id,
            "X-Turnkit-Status": turn.status,
        }
        body = {**head, "object": "chat.completion", "choices": [choice]}
        return JSONResponse(body, headers=headers)

    async def _conversation(
        self,
        user: str | None,
        messages: Sequence[Mapping[str, Any]],
        message: Message,
        pinned: str | None,
        key: str | None,
    ) -> tuple[Conversation, ChannelMessage]:
        """Where the request goes (the chat it pins, else the one its messages find), and its message."""
        asked = Request.of(user, messages)
        principal = Principal(self.channel.name, user or ANONYMOUS)

        def to(chat: str) -> ChannelMessage:
            return ChannelMessage(self.channel.name, chat, principal, message, metadata={"api": "openai"})

        if pinned is not None:
            inbound = to(pinned)
            return await self.conversations.pinned(inbound, asked), inbound
        conversation = await self.conversations.find(asked, key)
        return conversation, to(conversation.chat)

    async def _chunks(
        self, head: Mapping[str, Any], conversation: Conversation, events: AsyncIterator[TurnEvent]
    ) -> AsyncIterator[str]:
        """The reply as ``chat.completion.chunk`` events: the role, the text as it comes, the end.

        What was not streamed (a denied or failed turn's polite reply, or a
        reply produced in another process) goes out as one chunk before the
        end. The conversation's new point is recorded before that chunk, so
        that the client's next request, sent once the stream ends, finds it.
        """
        head = {**head, "object": "chat.completion.chunk"}

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
        sent = "".join(streamed)
        rest = unsent(outcome.reply.text, sent)
        turn_id = outcome.result.turn.turn_id
        await self.conversations.record(conversation, outcome.session_id, turn_id, sent + rest)
        if rest:
            yield chunk({"content": rest})
        yield chunk({}, _finish_reason(outcome))
        yield DONE

    def _head(self, completion_id: str, model: str) -> dict[str, Any]:
        return {"id": completion_id, "created": int(time.time()), "model": model}


def model_not_found(name: str) -> JSONResponse:
    """The 404 OpenAI's API answers for a model it does not serve, in its exact shape."""
    error = {
        "message": f"The model {shown(name)} does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    return JSONResponse({"error": error}, status_code=404)


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
    """Refuse a ``model`` that is not a string, and what a turn cannot do rather than silently ignore it."""
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
