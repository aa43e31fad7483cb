"""Passive replies: what the platform accepts in answer to a message, and how a reply stays inside it.

A QQ bot answers messages; it can no longer write into a chat on its own
(the platform ended "active" messages in April 2025). A reply is
``POST /v2/users/{openid}/messages`` (a user's chat) or
``POST /v2/groups/{group_openid}/messages`` (a group) with
``{"content", "msg_type": 0, "msg_id", "msg_seq"}``: ``msg_id`` is the
message answered, ``msg_seq`` numbers the replies to it. Part ``i`` of a
reply (counting from 0) is always ``msg_seq`` ``i + 1``, so a part sent
again after a crash carries the same pair and the platform refuses it as a
duplicate instead of showing it twice.

The platform takes at most ``REPLY_LIMIT`` replies per message, within a
window from the message's time: an hour in a user's chat, five minutes in
a group. A part beyond either is never delivered, however often it is
sent: the channel logs it as undelivered and does not send it.
"""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import ChannelMessage

from .events import MSG_ID, SENT_AT

#: Seconds from a message's time during which it can be answered, by chat kind.
REPLY_WINDOW = {"user": 3600.0, "group": 300.0}
#: Replies the platform takes per message.
REPLY_LIMIT = 5


@attrs.frozen
class ReplyTarget:
    """Where the parts of a reply go, and until when the platform takes them."""

    path: str
    msg_id: str
    deadline: float

    @classmethod
    def of(cls, inbound: ChannelMessage) -> ReplyTarget:
        """The target of a reply to ``inbound``; ``ValueError`` if it is no message the channel received."""
        kind, _, openid = inbound.chat_id.partition(":")
        msg_id, sent_at = inbound.metadata.get(MSG_ID), inbound.metadata.get(SENT_AT)
        if (
            kind not in REPLY_WINDOW
            or not openid
            or not isinstance(msg_id, str)
            or not isinstance(sent_at, int | float)
        ):
            raise ValueError(
                f"qq channel: {inbound.chat_id!r} cannot be written to: a QQ bot only answers"
                " messages it received (passive replies)"
            )
        return cls(f"/v2/{kind}s/{openid}/messages", msg_id, sent_at + REPLY_WINDOW[kind])

    def body(self, index: int, text: str) -> dict[str, Any]:
        """The request of part ``index`` (from 0) of the reply."""
        return {"content": text, "msg_type": 0, "msg_id": self.msg_id, "msg_seq": index + 1}
