"""OneBot v11 messages: the segment array, the CQ-code string, and the text the agent reads.

An implementation reports a message either as an array of segments
(``[{"type": "text", "data": {"text": "hi"}}, {"type": "at", "data":
{"qq": "10001"}}]``) or as one string with CQ codes
(``"[CQ:at,qq=10001] hi"``, plain text escaped with ``&amp;``, ``&#91;``,
``&#93;``, and ``&#44;`` inside a code's values), depending on its
configuration. Both become :class:`Segment` lists here, so that the channel
has one thing to read the text and the mentions from.

Replies go the other way as a single text segment
(:func:`text_message`): a segment's text is never parsed for CQ codes, so
whatever the model writes (``[CQ:at,qq=all]`` included) reaches the chat
as the characters it wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: A CQ code: ``[CQ:type]`` or ``[CQ:type,key=value,...]``.
CQ_CODE = re.compile(r"\[CQ:([^,\]]+)((?:,[^\]]*)?)\]")
#: Segment types that carry nothing the agent should read (a quoted message's id, a QQ face).
SILENT_TYPES = frozenset({"reply", "face"})


@attrs.frozen
class Segment:
    """One part of a message: its ``type`` (``text``, ``at``, ``image`` …) and its ``data``."""

    type: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def mentions(self, qq: str) -> bool:
        """Whether this segment @-mentions the account ``qq`` (an ``at`` of everyone does not count)."""
        return self.type == "at" and str(self.data.get("qq", "")) == qq


def segments(message: Any) -> list[Segment]:
    """The segments of a reported ``message``: a segment array, or a CQ-code string.

    Anything else (``None``, a number) has no segments; so has an array's
    entry that is not a ``{"type", "data"}`` object, which is skipped.
    """
    if isinstance(message, str):
        return parse_cq(message)
    if not isinstance(message, list):
        return []
    found = []
    for entry in message:
        if isinstance(entry, Mapping) and isinstance(entry.get("type"), str):
            data = entry.get("data")
            found.append(Segment(entry["type"], dict(data) if isinstance(data, Mapping) else {}))
    return found


def parse_cq(message: str) -> list[Segment]:
    """The segments of a CQ-code string: text between the codes, unescaped, and one segment per code."""
    found: list[Segment] = []
    position = 0
    for code in CQ_CODE.finditer(message):
        if code.start() > position:
            found.append(Segment("text", {"text": unescape(message[position : code.start()])}))
        data: dict[str, str] = {}
        for item in code.group(2)[1:].split(",") if code.group(2) else ():
            key, _, value = item.partition("=")
            data[key] = unescape(value)
        found.append(Segment(code.group(1), data))
        position = code.end()
    if position < len(message):
        found.append(Segment("text", {"text": unescape(message[position:])}))
    return found


def unescape(text: str) -> str:
    """Plain text (or a CQ code's value) as written before CQ escaping; ``&amp;`` is undone last."""
    return text.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]").replace("&amp;", "&")


def plain_text(parts: Sequence[Segment]) -> str:
    """What the agent reads of ``parts``: the text, ``@name`` for mentions, ``[type]`` for media.

    Leading and trailing whitespace is dropped (a mention stripped from the
    start leaves the space that followed it).
    """
    pieces = []
    for part in parts:
        if part.type == "text":
            pieces.append(str(part.data.get("text", "")))
        elif part.type == "at":
            qq = str(part.data.get("qq", ""))
            pieces.append("@everyone" if qq == "all" else f"@{part.data.get('name') or qq}")
        elif part.type not in SILENT_TYPES:
            pieces.append(f"[{part.type}]")
    return "".join(pieces).strip()


def text_message(text: str) -> list[dict[str, Any]]:
    """A reply's ``message`` parameter: one text segment, which no implementation parses for CQ codes."""
    return [{"type": "text", "data": {"text": text}}]
