"""A Chat Completions answer, whole or streamed, as a turnkit ``Message``.

:class:`ReplyBuilder` takes either one ``chat.completion`` or the
``chat.completion.chunk`` objects of a stream in order, and builds the same
message from both: reasoning (``reasoning_content`` or ``reasoning``, which
some servers send apart from the answer), the text, and the tool calls with
their arguments parsed. In a stream a tool call arrives in pieces under its
``index``: the id and the name once, the arguments as fragments of one JSON
text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from turnkit_hookspecs import Block, Message, ReasoningBlock, TextBlock, ToolCallBlock

from .names import FunctionNames


class ReplyFormatError(ValueError):
    """The server's answer is not a Chat Completions answer the plugin can read."""


@attrs.define
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ReplyBuilder:
    """Collects one answer of the model; :meth:`build` makes the message."""

    def __init__(self, names: FunctionNames, model: str) -> None:
        self._names = names
        self._model = model
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._metadata: dict[str, Any] = {}

    def add_completion(self, completion: Any) -> str:
        """Take a whole ``chat.completion``; return its text."""
        message = self._first_choice(completion).get("message")
        if not isinstance(message, Mapping):
            raise ReplyFormatError(f"the first choice has no message: {_excerpt(completion)}")
        for index, call in enumerate(message.get("tool_calls") or ()):
            self._add_call(index, call)
        return self._add_text(message)

    def add_chunk(self, chunk: Any) -> str:
        """Take the next ``chat.completion.chunk`` of a stream; return the text it adds."""
        if isinstance(chunk, Mapping) and not chunk.get("choices"):
            self._note(chunk)  # e.g. the last chunk, with only the usage
            return ""
        delta = self._first_choice(chunk).get("delta") or {}
        if not isinstance(delta, Mapping):
            raise ReplyFormatError(f"a chunk's delta is not an object: {_excerpt(chunk)}")
        for position, call in enumerate(delta.get("tool_calls") or ()):
            index = call.get("index", position) if isinstance(call, Mapping) else position
            self._add_call(index, call)
        return self._add_text(delta)

    def build(self) -> Message:
        """The answer so far as an assistant message, its tool calls' arguments parsed."""
        blocks: list[Block] = []
        if self._reasoning:
            blocks.append(ReasoningBlock("".join(self._reasoning)))
        text = "".join(self._text)
        if text or not self._calls:
            blocks.append(TextBlock(text))
        blocks += [self._tool_call(self._calls[index]) for index in sorted(self._calls)]
        author = str(self._metadata.get("model") or self._model)
        return Message("assistant", blocks, author=author, metadata=self._metadata)

    def _first_choice(self, answer: Any) -> Mapping[str, Any]:
        if not isinstance(answer, Mapping):
            raise ReplyFormatError(f"expected a JSON object, got {_excerpt(answer)}")
        self._note(answer)
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ReplyFormatError(f"no choices in the answer: {_excerpt(answer)}")
        choice: Mapping[str, Any] = choices[0]
        if choice.get("finish_reason"):
            self._metadata["finish_reason"] = choice["finish_reason"]
        return choice

    def _note(self, answer: Mapping[str, Any]) -> None:
        """Keep what the stored reply should tell about the answer: model and usage."""
        for key in ("model", "usage"):
            if answer.get(key):
                self._metadata[key] = answer[key]

    def _add_text(self, part: Mapping[str, Any]) -> str:
        reasoning = part.get("reasoning_content") or part.get("reasoning")
        if isinstance(reasoning, str):
            self._reasoning.append(reasoning)
        text = part.get("content")
        if not isinstance(text, str):
            return ""
        self._text.append(text)
        return text

    def _add_call(self, index: Any, call: Any) -> None:
        if not isinstance(call, Mapping) or not isinstance(index, int):
            raise ReplyFormatError(f"a tool call is not an object with an index: {_excerpt(call)}")
        partial = self._calls.setdefault(index, _PartialCall())
        function = call.get("function") or {}
        if call.get("id"):
            partial.id = str(call["id"])
        if function.get("name"):
            partial.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):  # some servers send the object itself
            arguments = json.dumps(arguments)
        if isinstance(arguments, str):
            partial.arguments += arguments

    def _tool_call(self, partial: _PartialCall) -> ToolCallBlock:
        if not partial.name:
            raise ReplyFormatError("the model called a tool without naming it")
        tool = self._names.tool(partial.name)
        try:
            args = json.loads(partial.arguments) if partial.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            shown = partial.arguments[:200]
            raise ReplyFormatError(
                f"the model called {tool} with arguments that are not JSON ({exc}): {shown!r}"
            ) from None
        if not isinstance(args, dict):
            raise ReplyFormatError(f"the model called {tool} with arguments that are not an object: {args!r}")
        # some servers leave the id out; the tool's output must still answer this very call
        call_id = partial.id or f"call_{uuid.uuid4().hex[:24]}"
        return ToolCallBlock(call_id, tool, args)


def _excerpt(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:200] + "…"
