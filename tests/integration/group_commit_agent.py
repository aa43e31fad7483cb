"""An agent driving many sessions at once on group commit, for test_group_commit_crash.py to kill.

Run in a subprocess, never imported by the tests::

    python group_commit_agent.py CONFIG SESSIONS

It starts the agent of CONFIG and sends to SESSIONS sessions concurrently,
one message after another each, until it is killed. It prints, flushing
each line at once:

* ``MODEL <turn id> <text>`` when the model is about to be asked (from
  ``turn_prompt``): the inbound message must be durable by then;
* ``ACK <turn id> <text>`` when ``send`` returned the reply: the message
  and its reply must be durable by then;
* ``COMMIT <writes>`` as a transaction of several writes (a group commit)
  begins to commit, seen through sqlite3's statement trace of the store's
  connection: the test kills the process right after one of these.
"""

from __future__ import annotations

import asyncio
import sys

from turnkit import PluginManager, load_config
from turnkit.agent import Agent
from turnkit.store import SQLiteStore
from turnkit_hookspecs import Prompt, TurnInfo, hookimpl


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Witness:
    """Reports each turn whose model is about to be asked."""

    @hookimpl
    def turn_prompt(self, turn: TurnInfo, prompt: Prompt) -> None:
        say(f"MODEL {turn.turn_id} {prompt.messages[-1].text}")


class Commits:
    """Counts the writes of each transaction of the store's connection; reports shared commits."""

    def __init__(self) -> None:
        self.writes = 0

    def __call__(self, statement: str) -> None:
        if statement.startswith("BEGIN"):
            self.writes = 0
        elif statement.startswith("SAVEPOINT"):
            self.writes += 1
        elif statement == "COMMIT" and self.writes > 1:
            say(f"COMMIT {self.writes}")


async def main(config_path: str, sessions: int) -> None:
    config = load_config(config_path)
    manager = PluginManager.load(config)
    manager.register(Witness(), "witness")
    async with Agent(config, manager=manager) as agent:
        store = agent.store
        assert isinstance(store, SQLiteStore)
        ids = [(await agent.sessions.open(f"s{n}")).session_id for n in range(sessions)]
        connection = store._conn  # the statement trace of the store's own connection
        assert connection is not None
        connection.set_trace_callback(Commits())

        async def drive(session_id: str) -> None:
            number = 0
            while True:
                number += 1
                result = await agent.send(f"{session_id} message {number}", session_id)
                assert result.reply is not None, result
                say(f"ACK {result.turn.turn_id} {result.reply.text}")

        await asyncio.gather(*(drive(session_id) for session_id in ids))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
