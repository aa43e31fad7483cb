"""A turnkit ``Prompt`` as the body of a Chat Completions request.

Each turnkit message becomes one chat message, except a ``tool`` message,
which becomes one ``role: tool`` message per output (the API answers each
call by its ``tool_call_id``). User messages carry images as ``image_url``
parts; blocks the API cannot carry (documents other than text, attachments)
are replaced by a one-line note, so the model knows something was there
rather than silently missing it. Reasoning blocks are not sent back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from turnkit_hookspecs import (
    AttachmentBlock,
    Base64Source,
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    Prompt,
    Source,
    TextBlock,
    ToolOutputBlock,
    ToolSpec,
    UrlSource,
)

from .names import function_name
from .settings import OpenAISettings


def chat_request(prompt: Prompt, settings: OpenAISettings, *, stream: bool) -> dict[str, Any]:
    """The JSON body asking ``settings.model`` to answer ``prompt``."""
    body: dict[str, Any] = {
        **settings.params,
        "model": settings.model,
        "messages": chat_messages(prompt.messages),
    }
    if prompt.tools:
        body["tools"] = [chat_tool(tool) for tool in prompt.tools]
    if settings.temperature is not None:
        body["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    if stream:
        body["stream"] = True
    return body


def chat_tool(tool: ToolSpec) -> dict[str, Any]:
    """A tool as a ``function`` entry of ``tools``."""
    return {
        "type": "function",
        "function": {
            "name": function_name(tool.name),
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def chat_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """The chat messages for a prompt's messages, in order."""
    return [chat for message in messages for chat in chat_message(message)]


def chat_message(message: Message) -> list[dict[str, Any]]:
    """One turnkit message as chat messages (several for a ``tool`` message)."""
    if message.role == "tool":
        return [tool_result(block) for block in message.blocks if isinstance(block, ToolOutputBlock)]
    if message.role == "assistant":
        return [assistant_message(message)]
    if message.role == "user":
        return [{"role": "user", "content": user_content(message.blocks)}]
    return [{"role": message.role, "content": "\n".join(text_of(b) for b in message.blocks if text_of(b))}]


def assistant_message(message: Message) -> dict[str, Any]:
    """An assistant message: its text and the tool calls it made."""
    chat: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        chat["tool_calls"] = [
            {
                "id": call.tool_call_id,
                "type": "function",
                "function": {"name": function_name(call.name), "arguments": json.dumps(call.args)},
            }
            for call in message.tool_calls
        ]
    elif chat["content"] is None:
        chat["content"] = ""
    return chat


def tool_result(block: ToolOutputBlock) -> dict[str, Any]:
    """A tool's output as the ``role: tool`` answer to its call (an error says so)."""
    content = f"Error: {block.output}" if block.is_error else block.output
    return {"role": "tool", "tool_call_id": block.tool_call_id, "content": content}


def user_content(blocks: Iterable[Block]) -> str | list[dict[str, Any]]:
    """A user message's content: a string, or parts when it holds an image."""
    blocks = tuple(blocks)
    if not any(isinstance(block, ImageBlock) for block in blocks):
        return "\n".join(text for text in map(text_of, blocks) if text)
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": source_url(block.source)}})
        elif text := text_of(block):
            parts.append({"type": "text", "text": text})
    return parts


def text_of(block: Block) -> str:
    """What the model reads of a non-image block ("" for one it need not see)."""
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, DocumentBlock):
        return document_text(block)
    if isinstance(block, AttachmentBlock):
        return f"[attached {block.kind} {block.name!r}: not shown to the model]"
    if isinstance(block, ImageBlock):
        return f"[image{f' {block.alt!r}' if block.alt else ''}: not shown to the model]"
    return ""  # reasoning, tool calls and outputs travel elsewhere or not at all


def document_text(block: DocumentBlock) -> str:
    """A text document inline, under its title; any other document as a note."""
    title = repr(block.title) if block.title else "(untitled)"
    source = block.source
    if isinstance(source, Base64Source) and source.media_type.startswith("text/"):
        try:
            return f"Document {title}:\n{base64.b64decode(source.data, validate=True).decode()}"
        except (binascii.Error, UnicodeDecodeError):
            pass  # not readable as text: noted like any other document below
    return f"[document {title} ({source.media_type or 'unknown type'}): not shown to the model]"


def source_url(source: Source) -> str:
    """An image source as the URL the API takes: a ``data:`` URL for inline bytes."""
    if isinstance(source, UrlSource):
        return source.url
    return f"data:{source.media_type};base64,{source.data}"
