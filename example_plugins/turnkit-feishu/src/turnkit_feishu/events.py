"""Reading a v2 event (``{"schema": "2.0", "header": {...}, "event": {...}}``) Feishu pushed.

The channel answers one event type, ``im.message.receive_v1``: a user's
message to the bot (in a one-to-one chat, or mentioning it in a group).
:func:`received_message` reads what the channel needs of it: the ids it
replies to and keys the conversation by, who sent it, and its text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .content import text_of
from .errors import Malformed

MESSAGE_RECEIVED = "im.message.receive_v1"


@attrs.frozen
class ReceivedMessage:
    """The parts of an ``im.message.receive_v1`` event the channel uses.

    ``text`` is ``None`` for a message without text (an image, a file …);
    ``thread_id`` is set for a message in a thread (topic).
    """

    event_id: str
    message_id: str
    chat_id: str
    chat_type: str
    message_type: str
    sender_open_id: str
    sender_type: str
    thread_id: str | None
    text: str | None


def event_type(payload: Mapping[str, Any]) -> str | None:
    """The ``header.event_type`` of a v2 event; ``None`` for anything else (v1 events, callbacks)."""
    header = payload.get("header")
    if payload.get("schema") != "2.0" or not isinstance(header, Mapping):
        return None
    kind = header.get("event_type")
    return kind if isinstance(kind, str) else None


def received_message(payload: Mapping[str, Any]) -> ReceivedMessage:
    """The message of an ``im.message.receive_v1`` event; :class:`Malformed` if a field is missing."""
    header = _object(payload, "header")
    event = _object(payload, "event")
    message = _object(event, "message")
    sender = _object(event, "sender")
    mentions = message.get("mentions")
    message_type = _string(message, "message_type")
    return ReceivedMessage(
        event_id=_string(header, "event_id"),
        message_id=_string(message, "message_id"),
        chat_id=_string(message, "chat_id"),
        chat_type=str(message.get("chat_type") or ""),
        message_type=message_type,
        sender_open_id=_string(_object(sender, "sender_id"), "open_id"),
        sender_type=str(sender.get("sender_type") or ""),
        thread_id=str(message["thread_id"]) if message.get("thread_id") else None,
        text=text_of(
            message_type,
            str(message.get("content") or ""),
            [m for m in mentions if isinstance(m, Mapping)] if isinstance(mentions, list) else [],
        ),
    )


def _object(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise Malformed(f"{MESSAGE_RECEIVED} event without an object {name!r}")
    return value


def _string(parent: Mapping[str, Any], name: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{MESSAGE_RECEIVED} event without {name!r}")
    return value
