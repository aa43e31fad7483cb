"""The plugin over the agent's life: the model it names, one connection pool, closed at stop."""

from __future__ import annotations

import time

import pytest
from agents import UseOpenAI
from loopback import Answer, ChatServer, completion
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness


def test_the_agent_s_model_is_the_one_the_plugin_asks_for(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI
) -> None:
    use_openai(model="gpt-4o-mini")
    model = turnkit_agent.agent.model
    assert (model.name, model.served, model.echo) == ("gpt-4o-mini", ("gpt-4o-mini",), False)
    assert turnkit_agent.agent.config.model.name == "gpt-4o-mini"


def test_a_model_name_the_plugin_does_not_ask_for_stops_the_start(
    turnkit_agent: AgentHarness, use_openai: UseOpenAI
) -> None:
    use_openai(model="gpt-4o-mini")
    turnkit_agent.configure(model={"name": "gpt-4o"})
    with pytest.raises(
        ConfigError, match=r"no model 'gpt-4o': the model plugin serves 'gpt-4o-mini' @ \$\.model\.name"
    ):
        turnkit_agent.start()


def test_turns_share_one_connection_and_the_stop_closes_it(
    turnkit_agent: AgentHarness, chat_server: ChatServer, use_openai: UseOpenAI
) -> None:
    use_openai()
    chat_server.script(*(Answer(body=completion(f"answer {n}")) for n in range(3)))
    first = turnkit_agent.send("one")
    turnkit_agent.send("two", first.turn.session_id)
    turnkit_agent.send("three")
    [peer] = {request.peer for request in chat_server.requests}  # one connection for three turns
    assert len(chat_server.requests) == 3 and peer not in chat_server.closed

    turnkit_agent.stop()
    deadline = time.monotonic() + 10
    while peer not in chat_server.closed:  # the server notices the end on its own thread
        assert time.monotonic() < deadline, "the agent stopped and left its connection open"
        time.sleep(0.01)
