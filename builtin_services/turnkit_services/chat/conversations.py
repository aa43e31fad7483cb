"""Which session an OpenAI chat completion goes to: the one whose transcript the request carries.

An OpenAI client keeps no conversation id: it resends the whole
conversation with every request. A request therefore **continues** a
session only when that session's transcript — its user messages and the
replies this endpoint sent, in order — is exactly the request's messages
before the last one. Nothing else would be safe: two clients may open
with the same words, and one that continued the other's session would
see (or be answered with) the other's later messages.

**Points.** Every point a conversation reached (the end of each turn) has a
digest, chained message by message from a seed (the request's ``user``):
``d(n+1) = sha256(d(n), role, content)``, the content normalised as
:func:`said` does. ``system`` and ``developer`` messages are not part of
it: they are the conversation's instructions (below). The chat service's
storage keeps, under ``openai.points``, each point's session and turn;
under ``openai.ends``, each session's current end. Finding the session for
a request is then one lookup by the digest of its earlier messages:

- it is a session's end → **continue** that session;
- it is an earlier point of a session (the client edited a message, or
  another client with the same history went on differently) → **fork**
  that session as of the end of that point's turn
  (``ForkOptions(after_turn=...)``): the child sees exactly the messages
  the client sent, and the original session is left as it was;
- otherwise (a first message, or a history this agent never produced) →
  a **new** session; earlier messages it did not see are not replayed.

A session's end is reserved, by compare-and-set, while a request's turn
runs there, and written anew when it ends: two requests with the same
earlier messages never both continue one session (the second forks).

**Instructions.** A request's ``system`` (and ``developer``) messages,
joined with blank lines, become its session's instructions
(``SessionAccess.set_instructions``), replacing the agent's: a changed
system message takes effect from that turn on. A request without any
continues a session whose requests had none; a session that had some is
forked instead, with the agent's instructions, so that a client never
inherits instructions it did not send.

**Pinned conversations.** With the ``X-Turnkit-Chat`` header, the chat
named is used as is (its session's instructions set from the request's
system messages). A pinned request carrying its session's whole transcript
moves the session's end like any other; otherwise the end is no longer
known, so a later request without the header forks the session rather
than continue it.

**Retries.** A request with an ``Idempotency-Key`` remembers (under
``openai.retries``) the chat it went to, so that a retry reaches the same
session, where the runtime answers it with the first request's turn.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from turnkit_hookspecs import ChannelMessage, ForkOptions, StorageConflict

from .channel import ChatPath
from .http_errors import ApiError

#: The storage collections (in the chat service's storage).
POINTS = "openai.points"
ENDS = "openai.ends"
RETRIES = "openai.retries"
#: The roles whose messages are a conversation's instructions, not part of its transcript.
INSTRUCTION_ROLES = ("system", "developer")
#: Who forks a session for the endpoint, in the session's audit trail.
EXTENSION_ID = "chat.openai"
#: What became of a request's conversation.
Decision = Literal["continued", "forked", "new", "retried", "pinned"]
#: How many hex digits of a digest are kept (128 bits).
DIGEST = 32


@attrs.frozen
class Request:
    """What of a chat completion request finds its conversation.

    ``earlier`` is the digest of the messages before the last (instructions
    left out), ``None`` when there are none; ``last`` the last message's
    normalised content; ``instructions`` the joined system messages, or
    ``None``.
    """

    seed: str
    earlier: str | None
    last: list[list[str]]
    instructions: str | None

    @classmethod
    def of(cls, user: str | None, messages: Sequence[Mapping[str, Any]]) -> Request:
        """The request with this ``user`` field and these ``messages`` (validated: the last is the user's)."""
        seed = _digest(json.dumps(["turnkit-openai", user], ensure_ascii=False))
        point = seed
        earlier = [m for m in messages[:-1] if m["role"] not in INSTRUCTION_ROLES]
        for message in earlier:
            point = extend(point, message["role"], said(message.get("content")))
        told = [_text(m.get("content")) for m in messages if m["role"] in INSTRUCTION_ROLES]
        instructions = "\n\n".join(text for text in told if text) or None
        return cls(seed, point if earlier else None, said(messages[-1].get("content")), instructions)

    @property
    def identity(self) -> str:
        """A digest of the earlier messages and the last one: what a retry resends unchanged."""
        return extend(self.earlier or self.seed, "user", self.last)

    def after(self, reply: str) -> str:
        """The point this request's conversation reaches once the client has ``reply``."""
        return extend(self.identity, "assistant", said(reply))


@attrs.frozen
class Conversation:
    """Where one request goes: the chat (and its session), and what it holds of the session's end.

    ``held`` is the version of the session's end record this request
    reserved, to write the new end with once the turn is over; ``None``
    when it holds nothing (a retry, most pinned chats). ``request`` is
    ``None`` when the point reached is not to be recorded: a pinned request
    that does not carry its session's whole transcript.
    """

    chat: str
    session_id: str
    how: Decision
    request: Request | None
    held: int | None = None


class Conversations:
    """Finds and records the OpenAI endpoint's conversations in the chat service's storage."""

    def __init__(self, chat: ChatPath, channel: str) -> None:
        self.chat = chat
        self.channel = channel

    async def find(self, request: Request, key: str | None) -> Conversation:
        """The conversation ``request`` continues, forks or starts (see the module docstring).

        With an idempotency ``key``, a retry (the same key, the same
        messages) goes where the first request went. The same key with other
        messages is decided as any request: the runtime then answers it as
        it answers a key reused on the native API.
        """
        if key is None:
            return await self._decide(request)
        retry = _digest(key)
        first = await self.chat.storage.get(RETRIES, retry)
        if first is not None:
            if first.value["request"] == request.identity:
                return Conversation(first.value["chat"], first.value["session_id"], "retried", request)
            return await self._decide(request)
        conversation = await self._decide(request)
        value = {"chat": conversation.chat, "session_id": conversation.session_id}
        try:
            await self.chat.storage.put(RETRIES, retry, {**value, "request": request.identity}, expect=0)
        except StorageConflict:  # the first request was still deciding when this retry came: go there
            await self._release(conversation)
            return await self.find(request, key)
        return conversation

    async def pinned(self, inbound: ChannelMessage, request: Request) -> Conversation:
        """The conversation of a chat the client names (``X-Turnkit-Chat``).

        Its session is the one the chat path will choose. A request that
        carries the session's whole transcript goes on from its end like
        any other; otherwise the end is marked unknown before the turn (a
        request holding it then cannot write it either), so that no request
        without the header continues the session as if this turn had not
        happened.
        """
        plugins = self.chat.context.plugins
        session_id: str = await plugins.resolve("chat_session", inbound=inbound)
        await self._instruct(session_id, request)
        end = await self.chat.storage.get(ENDS, session_id)
        if end is None:  # never reached without the header: nothing to keep exact
            return Conversation(inbound.chat_id, session_id, "pinned", None)
        unknown = {**end.value, "point": None}
        if request.earlier is not None and end.value["point"] == request.earlier:
            try:
                held = await self.chat.storage.put(ENDS, session_id, unknown, expect=end.version)
            except StorageConflict:  # a request without the header holds it: it must not write it
                pass
            else:
                return Conversation(inbound.chat_id, session_id, "pinned", request, held.version)
        await self.chat.storage.put(ENDS, session_id, unknown)
        return Conversation(inbound.chat_id, session_id, "pinned", None)

    async def record(self, conversation: Conversation, session_id: str, turn_id: str, reply: str) -> None:
        """Remember the point reached: turn ``turn_id`` of ``session_id`` answered ``reply``.

        Called before the client gets the end of the reply, so that its next
        request finds the point. The session's end moves there only if this
        request held it (a ``chat_session`` plugin that chose another
        session leaves that session's end unknown: it is forked, never
        continued).
        """
        request = conversation.request
        if request is None:
            return
        point = request.after(reply)
        value = {"session_id": session_id, "turn_id": turn_id, "instructed": request.instructions is not None}
        await self.chat.storage.put(POINTS, point, value)
        if conversation.held is not None and session_id == conversation.session_id:
            end = {"point": point, "chat": conversation.chat}
            # A conflict: a pinned request marked the end unknown meanwhile, and so it stays.
            with contextlib.suppress(StorageConflict):
                await self.chat.storage.put(ENDS, session_id, end, expect=conversation.held)

    # ------------------------------------------------------------------ deciding

    async def _decide(self, request: Request) -> Conversation:
        point = None if request.earlier is None else await self.chat.storage.get(POINTS, request.earlier)
        if point is None:
            return await self._start(request)
        session_id, turn_id = point.value["session_id"], point.value["turn_id"]
        dropped = request.instructions is None and point.value["instructed"]
        if not dropped:
            continued = await self._continue(request, session_id)
            if continued is not None:
                return continued
        return await self._fork(request, session_id, turn_id, dropped=dropped)

    async def _continue(self, request: Request, session_id: str) -> Conversation | None:
        """The session, if its end is the request's earlier messages and this request could hold it."""
        end = await self.chat.storage.get(ENDS, session_id)
        if end is None or end.value["point"] != request.earlier:
            return None
        session = await self.chat.context.session.get(session_id)
        if session is None or session.status != "active":
            return None
        holding = {**end.value, "point": None}
        try:
            held = await self.chat.storage.put(ENDS, session_id, holding, expect=end.version)
        except StorageConflict:  # another request continues it right now
            return None
        await self._instruct(session_id, request)
        return Conversation(end.value["chat"], session_id, "continued", request, held.version)

    async def _fork(self, request: Request, session_id: str, turn_id: str, *, dropped: bool) -> Conversation:
        """A child of ``session_id`` as of the end of its turn ``turn_id``, with a chat of its own.

        The child starts with the parent's instructions; the request's
        replace them, and a request that ``dropped`` the instructions its
        conversation had gets the agent's.
        """
        chat = new_chat()
        options = ForkOptions(
            reason="an OpenAI client went on from an earlier point of the conversation",
            inherit_context=False,
            metadata=self._where(chat),
            after_turn=turn_id,
        )
        parent = await self.chat.context.session.extension(session_id, EXTENSION_ID)
        try:
            child = await parent.fork(options)
        except Exception as exc:  # a session_fork guard refused, or the turn cannot be forked after
            raise ApiError(409, f"the conversation cannot branch from its earlier point here: {exc}") from exc
        await self.chat.bind(self.channel, chat, child)
        if dropped:
            await self.chat.context.session.set_instructions(child, None)
        await self._instruct(child, request)
        return await self._held(chat, child, "forked", request)

    async def _start(self, request: Request) -> Conversation:
        chat = new_chat()
        session_id = await self.chat.new_session(self.channel, chat)
        await self._instruct(session_id, request)
        return await self._held(chat, session_id, "new", request)

    async def _held(self, chat: str, session_id: str, how: Decision, request: Request) -> Conversation:
        held = await self.chat.storage.put(ENDS, session_id, {"point": None, "chat": chat}, expect=0)
        return Conversation(chat, session_id, how, request, held.version)

    async def _instruct(self, session_id: str, request: Request) -> None:
        """Give the session the request's instructions, if it has any and they are not the session's yet."""
        sessions, wanted = self.chat.context.session, request.instructions
        if wanted is not None and await sessions.instructions(session_id) != wanted:
            await sessions.set_instructions(session_id, wanted)

    async def _release(self, conversation: Conversation) -> None:
        """Give back the end of a session a request continues but will not use (it lost a race to
        its own retry); a session it made for nothing stays one never continued."""
        if conversation.how != "continued" or conversation.request is None:
            return
        value = {"point": conversation.request.earlier, "chat": conversation.chat}
        with contextlib.suppress(StorageConflict):
            await self.chat.storage.put(ENDS, conversation.session_id, value, expect=conversation.held)

    def _where(self, chat: str) -> dict[str, Any]:
        return {"channel": self.channel, "chat_id": chat, "thread_id": None}


def new_chat() -> str:
    """A fresh chat key for a conversation of the endpoint."""
    return "openai-" + uuid.uuid4().hex[:24]


def extend(point: str, role: str, content: list[list[str]]) -> str:
    """The digest of the conversation at ``point`` followed by one message."""
    return _digest(json.dumps([point, role, content], ensure_ascii=False))


def said(content: Any) -> list[list[str]]:
    """A message's content as ``[kind, value]`` pairs, so that equal contents compare equal.

    A string and a list holding one text part of it are the same; empty
    text is nothing (a client may resend an empty reply as ``""`` or
    ``null``); an image part is its URL; anything else its JSON.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [["text", content]] if content else []
    if not isinstance(content, list):
        return [["json", json.dumps(content, sort_keys=True, ensure_ascii=False)]]
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append(["text", part["text"]])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            parts.append(["image", str(part["image_url"].get("url"))])
        else:
            parts.append(["json", json.dumps(part, sort_keys=True, ensure_ascii=False)])
    return parts


def _text(content: Any) -> str:
    """The text of a system message's content (a string, or its text parts, one per line)."""
    return "\n".join(text for kind, text in said(content) if kind == "text").strip()


def _digest(material: str) -> str:
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST]
