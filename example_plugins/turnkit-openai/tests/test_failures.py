"""A server that fails: retries, giving up, and the failed turn the runtime keeps."""

from __future__ import annotations

import logging
import socket

import pytest
from agents import KEY, UseOpenAI, listen
from loopback import Answer, ChatServer, chunk, completion, error_body, text_chunks
from turnkit.testing import AgentHarness
from turnkit_hookspecs import TurnResult, hookimpl


def assert_failed(turnkit_agent: AgentHarness, result: TurnResult, *parts: str) -> None:
    """The turn failed with an error holding ``parts``, and its inbound message is stored alone."""
    assert result.turn.status == "failed"
    assert result.reply is None
    error = result.turn.error or ""
    for part in parts:
        assert part in error, f"{part!r} not in {error!r}"
    assert [m.role for m in turnkit_agent.history(result.turn.session_id)] == ["user"]


def test_500_and_429_are_retried_until_the_answer(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=2)
    chat_server.script(
        Answer(status=500, body=error_body("The server had an error", "server_error")),
        Answer(status=429, body=error_body("Rate limit reached"), headers={"Retry-After": "0"}),
        Answer(body=completion("Third time lucky.")),
    )
    result = turnkit_agent.send("hi")
    assert result.reply is not None and result.reply.text == "Third time lucky."
    assert len(chat_server.requests) == 3
    assert len({str(r.body) for r in chat_server.requests}) == 1  # the same request each time


def test_retries_run_out_with_the_last_error_named(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=1)
    chat_server.script(*[Answer(status=503, body=error_body("Overloaded", "server_error"))] * 2)
    result = turnkit_agent.send("hi")
    assert_failed(
        turnkit_agent,
        result,
        f"POST {chat_server.url}/chat/completions: HTTP 503: Overloaded",
        "[2 attempts, no retries left, max_retries = 1]",
    )
    assert len(chat_server.requests) == 2


def test_401_fails_at_once_without_retries(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=3)
    chat_server.script(Answer(status=401, body=error_body("Incorrect API key provided: sk-test***")))
    result = turnkit_agent.send("hi")
    assert_failed(
        turnkit_agent,
        result,
        "CompletionError",
        f"POST {chat_server.url}/chat/completions: HTTP 401: Incorrect API key provided: sk-test***",
        "[1 attempt, not retried]",
    )
    assert len(chat_server.requests) == 1


def test_a_retry_after_beyond_backoff_max_ends_the_retries(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=3, backoff_max=5)
    chat_server.script(Answer(status=429, body=error_body("Slow down"), headers={"Retry-After": "120"}))
    result = turnkit_agent.send("hi")
    assert_failed(
        turnkit_agent, result, "HTTP 429: Slow down", "the server asked to wait 120 s, more than backoff_max"
    )
    assert len(chat_server.requests) == 1


def test_a_server_slower_than_the_timeout_fails_the_turn(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(timeout=0.2, max_retries=1)
    chat_server.script(*[Answer(body=completion("too late"), delay=5)] * 2)
    result = turnkit_agent.send("hi")
    assert_failed(turnkit_agent, result, "no answer within 0.2 s (ReadTimeout)", "2 attempts")
    assert len(chat_server.requests) == 2


def test_a_server_that_is_not_there_is_retried_then_named(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI
) -> None:
    with socket.socket() as unused:  # a port nobody listens on once it is closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    use_openai(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1)
    result = turnkit_agent.send("hi")
    assert_failed(turnkit_agent, result, f"POST http://127.0.0.1:{port}/v1/chat/completions: ConnectError")


def test_a_stream_cut_after_delivered_chunks_is_not_retried(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=3)
    chat_server.script(Answer(events=text_chunks("Half ", "a sen")[:3], cut=True))
    chunks, result = listen(turnkit_agent, "hi")
    assert chunks == ["Half ", "a sen"]
    assert_failed(
        turnkit_agent, result, "RemoteProtocolError", "not retried: 2 chunks had already reached the listener"
    )
    assert len(chat_server.requests) == 1


def test_a_stream_cut_before_any_text_is_retried(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=1)
    chat_server.script(
        Answer(events=(chunk({"role": "assistant", "content": ""}),), cut=True),
        Answer(events=text_chunks("Whole.")),
    )
    chunks, result = listen(turnkit_agent, "hi")
    assert result.turn.status == "completed", result.turn.error
    assert chunks == ["Whole."]
    assert len(chat_server.requests) == 2


def test_an_error_event_in_the_stream_fails_the_turn(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=3)
    chat_server.script(Answer(events=(error_body("context length exceeded"),)))
    chunks, result = listen(turnkit_agent, "hi")
    assert chunks == []
    assert_failed(turnkit_agent, result, "HTTP 200: context length exceeded", "not retried")


def test_an_answer_that_is_not_a_completion_fails_the_turn(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(max_retries=3)
    chat_server.script(Answer(body={"object": "list", "data": []}))
    result = turnkit_agent.send("hi")
    assert_failed(turnkit_agent, result, "ReplyFormatError: no choices in the answer", "not retried")
    assert len(chat_server.requests) == 1


def test_tool_arguments_that_are_not_json_fail_the_turn(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai()
    broken = completion(None, ("call_1", "memory__store", {}))
    broken["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"text": "unclosed'
    chat_server.script(Answer(body=broken))
    result = turnkit_agent.send("hi")
    assert_failed(turnkit_agent, result, "the model called memory.store with arguments that are not JSON")


class FailureSpy:
    """Records the error every ``turn_failed`` observer is given (what an audit plugin would write)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    @hookimpl
    def turn_failed(self, error: str) -> None:
        self.errors.append(error)


def test_a_key_the_server_quotes_back_reaches_no_error_or_log(
    turnkit_agent: AgentHarness,
    chat_server: ChatServer,
    use_openai: UseOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = FailureSpy()
    turnkit_agent.register(spy, "spy")
    use_openai(max_retries=1)
    chat_server.script(
        Answer(status=500, body=error_body(f"upstream refused Bearer {KEY}", "server_error")),
        Answer(status=401, body=error_body(f"Incorrect API key provided: {KEY}")),
    )
    with caplog.at_level(logging.WARNING):
        result = turnkit_agent.send("hi")
        turnkit_agent.settle()
    assert_failed(turnkit_agent, result, "HTTP 401: Incorrect API key provided: [secret]")
    [observed] = spy.errors
    assert "Incorrect API key provided: [secret]" in observed and KEY not in observed
    assert "upstream refused Bearer [secret]; retry 1 of 1" in caplog.text
    assert KEY not in caplog.text
