"""The text of a received message: what the agent reads of a ``text`` or ``post`` message.

A message's ``content`` is a JSON string whose shape depends on its
``message_type``. A ``text`` message is ``{"text": "..."}`` where each
mention is a placeholder (``@_user_1``) that the event's ``mentions`` list
explains; the placeholders are removed: they are keys, not words, and in a
group the one every message has is the bot's own (it is only told of
messages that mention it).
A ``post`` (rich text) is a title and paragraphs of elements, either as
``{"title", "content": [[...]]}`` or keyed by language
(``{"zh_cn": {...}}``); it is flattened to plain text, one line per
paragraph: ``text``, ``a`` (links, by their text) and ``code_block``
elements give their text, ``at`` elements the mentioned name (a post carries it), and images,
videos and emoji nothing. Other message types (images, files, stickers,
cards …) have no text the agent could answer.

>>> text_of("text", '{"text": "@_user_1 hello  there"}', [{"key": "@_user_1"}])
'hello there'
>>> text_of("post", '{"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "a "},'
...         ' {"tag": "at", "user_name": "Li"}]]}}', [])
'T\\na @Li'
>>> text_of("image", '{"image_key": "img_1"}', []) is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Elements of a post paragraph whose ``text`` is kept.
TEXT_TAGS = frozenset({"text", "a", "code_block"})
_SPACES = re.compile(r"[ \t]{2,}")


def text_of(message_type: str, content: str, mentions: Sequence[Mapping[str, Any]]) -> str | None:
    """The plain text of a message, or ``None`` if it has none (another type, or nothing but mentions)."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if message_type == "text":
        text = _without_mentions(str(body.get("text") or ""), mentions)
    elif message_type == "post":
        text = _post_text(body)
    else:
        return None
    return text or None


def _without_mentions(text: str, mentions: Sequence[Mapping[str, Any]]) -> str:
    for mention in mentions:
        key = mention.get("key")
        if isinstance(key, str) and key:
            text = text.replace(key, "")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


def _post_text(body: Mapping[str, Any]) -> str:
    post = body if "content" in body else next((v for v in body.values() if isinstance(v, dict)), {})
    lines = [str(post.get("title") or "").strip()]
    paragraphs = post.get("content")
    if isinstance(paragraphs, list):
        lines += ["".join(_element_texts(p)).strip() for p in paragraphs if isinstance(p, list)]
    return "\n".join(line for line in lines if line)


def _element_texts(paragraph: Iterable[Any]) -> Iterable[str]:
    for element in paragraph:
        if not isinstance(element, dict):
            continue
        tag = element.get("tag")
        if tag in TEXT_TAGS:
            yield str(element.get("text") or element.get("href") or "")
        elif tag == "at" and element.get("user_name"):
            yield f"@{element['user_name']}"
