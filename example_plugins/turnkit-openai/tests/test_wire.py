"""The plugin's own functions: the request body, function names, answers, SSE, retry waits."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from loopback import chunk, completion
from turnkit_hookspecs import (
    AttachmentBlock,
    Base64Source,
    DocumentBlock,
    ImageBlock,
    Message,
    Prompt,
    ReasoningBlock,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    UrlSource,
)
from turnkit_openai import (
    FunctionNames,
    OpenAISettings,
    ReplyBuilder,
    ReplyFormatError,
    asked_wait,
    chat_messages,
    chat_request,
    event_data,
    function_name,
    is_loopback,
    retry_delay,
    retryable_status,
    server_message,
)

# ------------------------------------------------------------------ the request


def test_every_role_maps_to_chat_messages() -> None:
    call = ToolCallBlock("call_1", "memory.search", {"query": "tea"})
    messages = [
        Message.of("system", "Be brief."),
        Message("user", (TextBlock("first"), TextBlock("second"))),
        Message("assistant", (ReasoningBlock("think"), TextBlock("Looking."), call)),
        Message(
            "tool",
            (ToolOutputBlock("call_1", "[]"), ToolOutputBlock("call_2", "no such scope", is_error=True)),
        ),
        Message.of("assistant", ""),
    ]
    assert chat_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first\nsecond"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "memory__search", "arguments": '{"query": "tea"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "[]"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: no such scope"},
        {"role": "assistant", "content": ""},
    ]


def test_blocks_the_api_cannot_carry_become_notes() -> None:
    text = base64.b64encode(b"line one\nline two").decode()
    message = Message(
        "user",
        (
            TextBlock("Read these."),
            DocumentBlock(Base64Source("text/plain", text), title="notes.txt"),
            DocumentBlock(UrlSource("https://example.com/a.pdf", "application/pdf")),
            DocumentBlock(Base64Source("text/plain", "%%%not base64")),
            AttachmentBlock("directory", "photos", path="/tmp/photos"),
        ),
    )
    assert chat_messages([message])[0]["content"].split("\n") == [
        "Read these.",
        "Document 'notes.txt':",
        "line one",
        "line two",
        "[document (untitled) (application/pdf): not shown to the model]",
        "[document (untitled) (text/plain): not shown to the model]",
        "[attached directory 'photos': not shown to the model]",
    ]


def test_images_are_parts_of_user_messages_only() -> None:
    image = ImageBlock(UrlSource("https://example.com/cat.jpg"), alt="a cat")
    user, system = chat_messages([Message("user", (image,)), Message("system", (TextBlock("x"), image))])
    assert user["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    assert system["content"] == "x\n[image 'a cat': not shown to the model]"


def test_the_request_body() -> None:
    tool = ToolSpec(
        "shell.exec", "Run a command", {"type": "object", "properties": {"argv": {"type": "array"}}}
    )
    prompt = Prompt([Message.of("user", "ls")], [tool])
    settings = OpenAISettings(model="m", params={"top_p": 0.5})
    assert chat_request(prompt, settings, stream=True) == {
        "top_p": 0.5,
        "model": "m",
        "messages": [{"role": "user", "content": "ls"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "shell__exec",
                    "description": "Run a command",
                    "parameters": tool.parameters,
                },
            }
        ],
        "stream": True,
    }


# ------------------------------------------------------------------ function names


def test_function_names_are_valid_and_read_back() -> None:
    assert function_name("memory.store") == "memory__store"
    assert function_name("my-svc.do it!") == "my-svc__do_it_"
    long = "service." + "x" * 80
    assert len(function_name(long)) == 64 and function_name(long) != function_name(long + "y")
    names = FunctionNames(["memory.store", "my-svc.do it!", long])
    assert [names.tool(function_name(t)) for t in ("memory.store", "my-svc.do it!", long)] == [
        "memory.store",
        "my-svc.do it!",
        long,
    ]
    assert names.tool("task__create") == "task.create"  # not offered: read back as well as possible


def test_two_tools_sharing_a_function_name_are_refused() -> None:
    with pytest.raises(ValueError, match=r"the tools 'a\.b' and 'a__b' would both be offered as 'a__b'"):
        FunctionNames(["a.b", "a__b"])


# ------------------------------------------------------------------ answers


def test_a_whole_answer_with_calls_and_reasoning() -> None:
    answer = completion("Checking.", ("call_1", "memory__search", {"query": "tea"}), ("", "task__create", {}))
    answer["choices"][0]["message"]["reasoning_content"] = "The user wants tea."
    answer["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"] = {"title": "tea"}
    builder = ReplyBuilder(FunctionNames(["memory.search", "task.create"]), "fallback-model")
    assert builder.add_completion(answer) == "Checking."
    message = builder.build()
    reasoning, text, search, create = message.blocks
    assert (reasoning, text, search) == (
        ReasoningBlock("The user wants tea."),
        TextBlock("Checking."),
        ToolCallBlock("call_1", "memory.search", {"query": "tea"}),
    )
    assert isinstance(create, ToolCallBlock) and create.args == {"title": "tea"}
    assert create.tool_call_id.startswith("call_")  # the server gave none: one is made up
    assert message.metadata == {
        "model": "test-model-2024",
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "finish_reason": "tool_calls",
    }


def test_streamed_chunks_build_the_same_message() -> None:
    builder = ReplyBuilder(FunctionNames(["memory.store"]), "m")
    added = [
        builder.add_chunk(c)
        for c in (
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "hm"}),
            chunk({"content": "Saving"}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c1", "function": {"name": "memory__store", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"text":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}),
            chunk({}, "tool_calls"),
            {"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 9}},
        )
    ]
    assert added == ["", "", "Saving", "", "", "", "", ""]
    message = builder.build()
    assert message.blocks == (
        ReasoningBlock("hm"),
        TextBlock("Saving"),
        ToolCallBlock("c1", "memory.store", {"text": "x"}),
    )
    assert message.metadata["usage"] == {"total_tokens": 9}
    assert message.author == "test-model-2024"


def test_an_empty_answer_is_an_empty_text() -> None:
    builder = ReplyBuilder(FunctionNames([]), "m")
    builder.add_completion(completion(None))
    assert builder.build().blocks == (TextBlock(""),)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"choices": []}', "no choices in the answer"),
        ('{"choices": [{"index": 0}]}', "the first choice has no message"),
    ],
)
def test_unreadable_answers_are_named(answer: str, problem: str) -> None:
    with pytest.raises(ReplyFormatError, match=problem):
        ReplyBuilder(FunctionNames([]), "m").add_completion(json.loads(answer))


def test_tool_arguments_must_be_a_json_object() -> None:
    builder = ReplyBuilder(FunctionNames(["memory.store"]), "m")
    builder.add_completion(completion(None, ("c1", "memory__store", [])))  # type: ignore[arg-type]
    with pytest.raises(
        ReplyFormatError, match=r"called memory\.store with arguments that are not an object: \[\]"
    ):
        builder.build()


# ------------------------------------------------------------------ server-sent events


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _events(*lines: str) -> list[str]:
    return [data async for data in event_data(_lines(*lines))]


def test_sse_events_joined_comments_and_other_fields_skipped() -> None:
    lines = (": keep-alive", "", "event: message", 'data: {"a":', "data:1}", "id: 7", "", "", "data: [DONE]")
    assert asyncio.run(_events(*lines)) == ['{"a":\n1}', "[DONE]"]


# ------------------------------------------------------------------ retries


def test_which_statuses_are_retried() -> None:
    assert [s for s in (400, 401, 403, 404, 408, 422, 429, 500, 502, 503, 504) if retryable_status(s)] == [
        429,
        500,
        502,
        503,
        504,
    ]


def test_the_wait_a_server_asks_for() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert asked_wait({"retry-after": "3"}) == 3.0
    assert asked_wait({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert asked_wait({"retry-after": later}, now=now.timestamp) == 30.0
    assert asked_wait({"retry-after": "soon"}) is None
    assert asked_wait({}) is None


def test_the_wait_doubles_with_jitter_within_its_bounds() -> None:
    low = [retry_delay(n, 0.5, 3.0, draw=lambda: 0.0) for n in (1, 2, 3, 4)]
    high = [retry_delay(n, 0.5, 3.0, draw=lambda: 0.999999) for n in (1, 2, 3, 4)]
    assert low == [0.25, 0.5, 1.0, 1.5]
    assert high == pytest.approx([0.5, 1.0, 2.0, 3.0])
    assert retry_delay(1, 0.5, 3.0, asked=2.0, draw=lambda: 0.0) == 2.0  # never sooner than asked
    assert retry_delay(1, 0.5, 3.0, asked=4.0) is None  # asked for more than backoff_max: give up


# ------------------------------------------------------------------ small helpers


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"error": {"message": "Invalid model", "type": "invalid_request_error"}}', "Invalid model"),
        (b'{"error": "model not found"}', "model not found"),
        (b'{"detail": [{"loc": ["body"], "msg": "bad"}]}', '[{"loc": ["body"], "msg": "bad"}]'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "(empty body)"),
    ],
)
def test_what_an_error_response_says(body: bytes, said: str) -> None:
    assert server_message(body) == said


def test_loopback_hosts() -> None:
    assert [
        h
        for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "api.openai.com")
        if is_loopback(h)
    ] == [
        "localhost",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
    ]
