"""The blocking facade, from plain (non-async) code: turns, history, actions, effects."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from turnkit.errors import UnknownActionError
from turnkit.manager import PluginManager
from turnkit.sync import SyncAgent
from turnkit_hookspecs import Message, Service, TurnInfo, action, hookimpl

from tests.support.agents import agent_config, texts


class SyncEffect:
    """A plain ``def`` effect recording each completed turn; ``two`` is set after the second."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []
        self.two = threading.Event()

    @hookimpl
    def turn_completed(self, turn: TurnInfo, reply: Message) -> None:
        self.seen.append((turn.number, reply.text))
        if len(self.seen) == 2:
            self.two.set()


class Greeter(Service):
    name = "greeter"

    @action
    def hello(self, who: str) -> str:
        """Greet someone."""
        return f"hello {who}"


def test_sync_agent_runs_turns_in_one_session_and_effects_between_calls(tmp_path: Path) -> None:
    effect = SyncEffect()
    config = agent_config(tmp_path)
    manager = PluginManager(config.plugins)
    manager.register(effect, "effect")
    manager.add_service(Greeter())

    with SyncAgent(config, manager=manager) as agent:
        first = agent.send("one")
        sid = first.turn.session_id
        second = agent.send(Message.of("user", "two"), sid)
        assert [(r.turn.number, r.turn.status) for r in (first, second)] == [
            (1, "completed"),
            (2, "completed"),
        ]
        assert second.reply is not None and second.reply.text == "two"
        assert texts(agent.history(sid)) == [
            ("user", "one"),
            ("assistant", "one"),
            ("user", "two"),
            ("assistant", "two"),
        ]

        assert effect.two.wait(5), "effects run on the agent's loop while the caller is not in a call"
        assert effect.seen == [(1, "one"), (2, "two")]

        session = agent.open("named", kind="task")
        assert (session.session_id, session.kind) == ("named", "task")
        assert agent.invoke("greeter.hello", {"who": "sam"}).value == "hello sam"
        with pytest.raises(UnknownActionError, match="did you mean 'greeter.hello'"):
            agent.invoke("greeter.helo")

    with pytest.raises(RuntimeError, match="not started"):
        agent.send("after stop")


def test_sync_agent_keeps_its_sessions_across_restarts(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    with SyncAgent(config, manager=PluginManager(config.plugins)) as agent:
        sid = agent.send("remember me").turn.session_id
    with SyncAgent(config, manager=PluginManager(config.plugins)) as agent:
        again = agent.send("still there?", sid)
        assert again.turn.number == 2
        assert [m.text for m in agent.history(sid)] == [
            "remember me",
            "remember me",
            "still there?",
            "still there?",
        ]
