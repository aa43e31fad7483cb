"""Which OneBot events the agent answers, and the channel message each becomes.

A OneBot v11 implementation reports everything on the socket: messages
(``post_type: "message"``), notices, requests, the bot's own sent messages
and meta events (heartbeats, lifecycle). Only messages are answered:

- a private message (``message_type: "private"``) always; its
  conversation is the user's;
- a group message (``message_type: "group"``) when it @-mentions the bot,
  or always with ``group_require_at = false``; its conversation is the
  group's, and whoever wrote is the turn's principal.

The mentions of the bot are taken out of the text; a message with no text
left (a lone mention, an image without words) is not answered. Both the
event id (``<self_id>:<message_id>``, what the inbox deduplicates on) and
the conversation include the bot's account, so that two bots on one agent
neither share a conversation nor drop each other's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from turnkit_hookspecs import ChannelMessage, Message, Principal

from .message import parse_cq, plain_text, segments

#: The channel's name: its entry point, its table and its conversations' channel.
CHANNEL = "onebot"


@attrs.frozen
class Address:
    """Where a conversation's replies go: the bot, and the user (``private``) or group it talks to.

    It is the conversation's ``chat_id``, ``<self_id>:<private|group>:<id>``,
    so that a message the agent sends on its own (``chat.deliver``) finds its
    way as a reply does.
    """

    self_id: str
    kind: str
    target: int

    @property
    def chat_id(self) -> str:
        """The conversation's id on the channel."""
        return f"{self.self_id}:{self.kind}:{self.target}"

    @classmethod
    def of(cls, chat_id: str) -> Address:
        """The address a ``chat_id`` names; ``ValueError`` for one this channel never made."""
        self_id, _, rest = chat_id.partition(":")
        kind, _, target = rest.partition(":")
        value = number(target)
        if not self_id.isdigit() or kind not in ("private", "group") or value is None:
            raise ValueError(
                f"not a OneBot conversation: {chat_id!r} (expected <self_id>:private|group:<id>)"
            )
        return cls(self_id, kind, value)


@attrs.frozen
class Incoming:
    """A message to answer: its event id for the inbox, and the channel message for the chat path."""

    event_id: str
    inbound: ChannelMessage


def incoming(event: Mapping[str, Any], self_id: str, *, group_require_at: bool) -> Incoming | None:
    """The message ``event`` (reported to the bot ``self_id``) asks the agent to answer, or ``None``.

    Its ``chat_id`` is the reply's :class:`Address`; its ``metadata`` keeps
    the event's ids (``message_id`` names the reply's event).
    """
    if event.get("post_type") != "message":
        return None
    kind = event.get("message_type")
    user_id, message_id = number(event.get("user_id")), number(event.get("message_id"))
    if kind not in ("private", "group") or user_id is None or message_id is None:
        return None
    if str(user_id) == self_id:  # the bot's own message, as some implementations report it
        return None
    parts = segments(event.get("message"))
    if not parts and isinstance(event.get("raw_message"), str):
        parts = parse_cq(event["raw_message"])
    target = user_id
    if kind == "group":
        group_id = number(event.get("group_id"))
        if group_id is None or (group_require_at and not any(p.mentions(self_id) for p in parts)):
            return None
        target = group_id
    text = plain_text([part for part in parts if not part.mentions(self_id)])
    if not text:
        return None
    sender = event.get("sender")
    name = (sender.get("card") or sender.get("nickname")) if isinstance(sender, Mapping) else None
    inbound = ChannelMessage(
        CHANNEL,
        Address(self_id, kind, target).chat_id,
        Principal(CHANNEL, str(user_id), name=str(name) if name else None),
        Message.of("user", text),
        metadata={"self_id": self_id, "message_type": kind, "message_id": message_id, "user_id": user_id},
    )
    return Incoming(f"{self_id}:{message_id}", inbound)


def number(value: Any) -> int | None:
    """A OneBot id (a JSON number, or its digits in a string) as an int; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.removeprefix("-").isdigit():
        return int(value)
    return None
