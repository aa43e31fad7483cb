"""What the platform's callbacks say: the payload, and the two message events that become turns.

Every callback is a JSON payload ``{"id", "op", "d", "s", "t"}``: ``op`` 0
is an event (``t`` its type, ``d`` its content), ``op`` 13 the check of the
callback URL. Two events are messages to the bot:

- ``C2C_MESSAGE_CREATE``, a user writing to the bot directly:
  ``d = {id, content, timestamp, author: {user_openid}}``. Its conversation
  is the user's: chat ``user:<user_openid>``.
- ``GROUP_AT_MESSAGE_CREATE``, a group member mentioning the bot:
  ``d = {id, content, timestamp, group_openid, author: {member_openid}}``.
  Its conversation is the group's (chat ``group:<group_openid>``, one
  session for all its members); ``content`` starts where the mention was,
  so the leading blank (and any mention tag still there) is dropped.

The chat ids name the OpenAPI path the reply goes to (``/v2/users/…`` or
``/v2/groups/…``). The message's own ``d.id`` is what a passive reply
answers (``msg_id``), and its ``timestamp`` is when the platform's reply
window started; both travel in the inbound's metadata.

``d.id`` is also the key the inbox deduplicates by, rather than the
payload's event ``id``: the platform sends a callback it saw no
acknowledgement for again, and its documentation warns that it may push
one message more than once; a message id covers both, whatever event id
the second push carries.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import attrs
from turnkit_hookspecs import ChannelMessage, Message, Principal

#: The channel's name, in chat ids and principals.
CHANNEL = "qq"
#: ``op`` of an event, and of the callback URL check.
DISPATCH = 0
VALIDATION = 13
#: The answer to every event the bot received (op 12, "HTTP Callback ACK").
ACK: dict[str, int] = {"op": 12, "d": 0}
#: The two message events.
C2C_MESSAGE = "C2C_MESSAGE_CREATE"
GROUP_AT_MESSAGE = "GROUP_AT_MESSAGE_CREATE"
#: Metadata keys of an inbound message: what a reply to it needs.
MSG_ID = "qq_msg_id"
SENT_AT = "qq_sent_at"

_MENTIONS = re.compile(r"^\s*(?:<@!?[^>\s]*>\s*)*")


class PayloadError(ValueError):
    """A callback body that is not a QQ payload."""


@attrs.frozen
class Received:
    """A message event: the key to deduplicate it by (its message id), and the message to answer."""

    event_id: str
    inbound: ChannelMessage


def payload_of(body: bytes) -> dict[str, Any]:
    """The payload of a callback body; :class:`PayloadError` unless it is a JSON object with an ``op``."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
        raise PayloadError("not a QQ payload: no integer 'op'")
    return payload


def received_of(payload: dict[str, Any]) -> Received | None:
    """The message of an op 0 payload, or ``None`` for an event that is no message (or has no text)."""
    kind = payload.get("t")
    d = payload.get("d")
    if kind not in (C2C_MESSAGE, GROUP_AT_MESSAGE) or not isinstance(d, dict):
        return None
    author = d.get("author")
    if not isinstance(author, dict):
        author = {}
    msg_id = _text(d.get("id"))
    if kind == C2C_MESSAGE:
        user = openid = _text(author.get("user_openid"))
        chat_kind, content = "user", _text(d.get("content"))
    else:
        user, openid = _text(author.get("member_openid")), _text(d.get("group_openid"))
        chat_kind, content = "group", _MENTIONS.sub("", _text(d.get("content")))
    text = content.strip()
    if not (msg_id and user and openid and text):
        return None
    chat = f"{chat_kind}:{openid}"
    inbound = ChannelMessage(
        CHANNEL,
        chat,
        Principal(CHANNEL, user),
        Message.of("user", text),
        metadata={MSG_ID: msg_id, SENT_AT: _sent_at(d.get("timestamp"))},
    )
    return Received(msg_id, inbound)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _sent_at(value: Any) -> float:
    """The message's time (RFC 3339) as a Unix time; now, if it has none the channel can read."""
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return time.time()
