"""Turns of a real agent (the fixture kit) whose model is the loopback Chat Completions server."""

from __future__ import annotations

import json

from agents import KEY, UseOpenAI, listen
from loopback import Answer, ChatServer, chunk, completion, text_chunks
from turnkit.testing import AgentHarness
from turnkit_hookspecs import Base64Source, ImageBlock, Message, TextBlock, ToolCallBlock, ToolOutputBlock


def test_a_plain_answer_is_the_stored_reply(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(temperature=0.2, max_tokens=50, headers={"X-Team": "support"}, params={"seed": 7})
    chat_server.script(Answer(body=completion("Hello, Ann.")))
    result = turnkit_agent.send("Hi, I'm Ann.")
    assert result.turn.status == "completed"
    assert result.reply is not None and result.reply.text == "Hello, Ann."
    assert result.reply.author == "test-model-2024"
    assert result.reply.metadata["usage"]["total_tokens"] == 15
    assert result.reply.metadata["finish_reason"] == "stop"
    [request] = chat_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-team"] == "support"
    assert request.body == {
        "seed": 7,
        "model": "test-model",
        "messages": [{"role": "user", "content": "Hi, I'm Ann."}],
        "temperature": 0.2,
        "max_tokens": 50,
    }  # no listener: not streamed
    assert [m.text for m in turnkit_agent.history(result.turn.session_id)] == ["Hi, I'm Ann.", "Hello, Ann."]


def test_the_next_turn_sends_the_history(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai()
    chat_server.script(Answer(body=completion("Hello, Ann.")), Answer(body=completion("You are Ann.")))
    first = turnkit_agent.send("Hi, I'm Ann.")
    second = turnkit_agent.send("Who am I?", first.turn.session_id)
    assert second.reply is not None and second.reply.text == "You are Ann."
    assert chat_server.requests[1].body["messages"] == [
        {"role": "user", "content": "Hi, I'm Ann."},
        {"role": "assistant", "content": "Hello, Ann."},
        {"role": "user", "content": "Who am I?"},
    ]


def test_a_listened_turn_streams_its_chunks_in_order(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai()
    chat_server.script(Answer(events=text_chunks("Once ", "upon ", "a time.")))
    chunks, result = listen(turnkit_agent, "Tell me a story.")
    assert chunks == ["Once ", "upon ", "a time."]
    assert result.reply is not None and result.reply.text == "".join(chunks)
    assert chat_server.requests[0].body["stream"] is True
    history = turnkit_agent.history(result.turn.session_id)
    assert history[-1].text == "Once upon a time."


def test_stream_false_sends_the_whole_text_to_the_listener_at_once(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(stream=False)
    chat_server.script(Answer(body=completion("All at once.")))
    chunks, _ = listen(turnkit_agent, "hi")
    assert chunks == ["All at once."]
    assert "stream" not in chat_server.requests[0].body


def test_stream_true_streams_even_unlistened_turns(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai(stream=True)
    chat_server.script(Answer(events=text_chunks("Nobody ", "listens.")))
    result = turnkit_agent.send("hi")
    assert result.reply is not None and result.reply.text == "Nobody listens."
    assert chat_server.requests[0].body["stream"] is True


def test_a_tool_call_round_trip_through_the_memory_service(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    turnkit_agent.add_service("memory")
    use_openai()
    call = ("call_abc", "memory__store", {"text": "Ann's birthday is on 4 May"})
    chat_server.script(Answer(body=completion(None, call)), Answer(body=completion("I'll remember that.")))
    result = turnkit_agent.send("Remember: my birthday is on 4 May. I'm Ann.")
    assert result.turn.status == "completed", result.turn.error
    assert result.reply is not None and result.reply.text == "I'll remember that."

    first, second = (request.body for request in chat_server.requests)
    offered = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert {"memory__store", "memory__search"} <= set(offered)
    assert offered["memory__store"]["parameters"]["properties"]["text"]["type"] == "string"
    assert all(tool["type"] == "function" for tool in first["tools"])
    assistant, tool = second["messages"][-2:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "memory__store", "arguments": json.dumps(call[2])},
            }
        ],
    }
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_abc"
    assert json.loads(tool["content"])["text"] == "Ann's birthday is on 4 May"

    # the memory is really stored, and the history holds the call and its output
    stored = turnkit_agent.invoke("memory.list", {})
    assert stored.ok, stored.error
    assert [m["text"] for m in stored.value] == ["Ann's birthday is on 4 May"]
    history = turnkit_agent.history(result.turn.session_id)
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[1].tool_calls == (ToolCallBlock("call_abc", "memory.store", call[2]),)
    assert isinstance(history[2].blocks[0], ToolOutputBlock)


def test_a_streamed_tool_call_arrives_in_pieces(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    turnkit_agent.add_service("memory")
    use_openai()
    opening = {"index": 0, "id": "call_s1", "type": "function"}
    pieces = ['{"te', 'xt": "tea at ', 'five"}']
    chat_server.script(
        Answer(
            events=(
                chunk({"role": "assistant", "content": "Let me note that. "}),
                chunk({"tool_calls": [{**opening, "function": {"name": "memory__store", "arguments": ""}}]}),
                *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces),
                chunk({}, "tool_calls"),
            )
        ),
        Answer(events=text_chunks("Noted: ", "tea at five.")),
    )
    chunks, result = listen(turnkit_agent, "Remind me: tea at five.")
    assert result.turn.status == "completed", result.turn.error
    assert chunks == ["Let me note that. ", "Noted: ", "tea at five."]
    history = turnkit_agent.history(result.turn.session_id)
    assert history[1].blocks == (
        TextBlock("Let me note that. "),
        ToolCallBlock("call_s1", "memory.store", {"text": "tea at five"}),
    )
    stored = turnkit_agent.invoke("memory.list", {})
    assert [m["text"] for m in stored.value] == ["tea at five"]


def test_an_image_goes_as_an_image_url_part(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai()
    chat_server.script(Answer(body=completion("A red dot.")))
    image = ImageBlock(Base64Source("image/png", "iVBORw0KGgo="))
    turnkit_agent.send(Message("user", (TextBlock("What is this?"), image)))
    assert chat_server.requests[0].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]
