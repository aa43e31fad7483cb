"""The Telegram channel end to end, against a loopback Bot API server (``telegram_fake``).

Each test runs a real agent on a SQLite file, serving the chat service with
``channels = ["telegram"]`` and ``base_url`` pointing at the fake server, so
every update and every reply crosses a real socket as Bot API JSON. A stop
is the agent's own (``request_stop``, then leaving ``async with``); a crash
in the middle of a turn is the orchestrator stopping without waiting for it
(``orchestrator.stop(timeout=0)``), which leaves the turn ``running`` in the
store exactly as a killed process does.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit.errors import ConfigError, TurnkitError
from turnkit_hookspecs import ChannelMessage, Deny, Prompt, hookimpl
from turnkit_services.chat import ChatService, ChatSettings
from turnkit_services.chat.telegram import NEW_SESSION_REPLY, PENDING, STATE

from tests.chat.telegram_fake import FakeTelegram, free_port
from tests.support.agents import build_agent, eventually, running_agent, texts
from tests.support.dists import subprocess_env, turnkit_command


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


def chat_table(base_url: str, token: str, **telegram: Any) -> dict[str, Any]:
    """``[service.chat]`` serving Telegram only, polling briefly and retrying fast."""
    table = {"token": token, "base_url": base_url, "poll_timeout": 1, "retry_delay": 0.05, **telegram}
    return {"chat": {"channels": ["telegram"], "telegram": table}}


def telegram_agent(tmp_path: Path, fake: FakeTelegram, plugins: Mapping[str, object] | None = None) -> Agent:
    return build_agent(
        tmp_path, services=[ChatService()], plugins=plugins, service=chat_table(fake.base_url, fake.token)
    )


@asynccontextmanager
async def serving(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    """Serve ``agent`` (started) until the block ends, then stop serving and re-raise what serving raised."""
    task = asyncio.create_task(agent.serve())
    try:
        yield task
    finally:
        agent.request_stop()
        await task


@asynccontextmanager
async def bot(
    tmp_path: Path, fake: FakeTelegram, plugins: Mapping[str, object] | None = None
) -> AsyncIterator[Agent]:
    """A started agent serving Telegram through ``fake``; stopped when the block ends."""
    async with telegram_agent(tmp_path, fake, plugins) as agent, serving(agent):
        yield agent


async def settled(agent: Agent) -> None:
    """Wait until every update taken from Telegram has been answered."""
    storage = agent.context.storage("chat")

    async def nothing_pending() -> bool:
        return not await storage.list(PENDING)

    await eventually(nothing_pending)


async def chat_history(agent: Agent, chat_id: int) -> list[tuple[str, str]]:
    """``(role, text)`` of the one session of a Telegram chat."""
    (session,) = [
        s
        for s in await agent.sessions.list_sessions("chat")
        if s.metadata.get("channel") == "telegram" and s.metadata.get("chat_id") == str(chat_id)
    ]
    return texts(await agent.sessions.history(session.session_id))


async def turn_statuses(agent: Agent) -> list[str]:
    return [
        t.status for s in await agent.sessions.list_sessions() for t in await agent.store.turns(s.session_id)
    ]


class Gate:
    """Holds every turn in ``turn_prompt`` until ``release`` is set (or forever)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @hookimpl
    async def turn_prompt(self, prompt: Prompt) -> None:
        self.entered.set()
        await self.release.wait()


class OnlyAlice:
    """Lets only Telegram user 1 talk to the agent."""

    @hookimpl
    def chat_authorize(self, inbound: ChannelMessage) -> Deny | None:
        return None if inbound.principal.id == "1" else Deny("only Alice may talk to this bot")


# ---------------------------------------------------------------- the main path


async def test_an_update_is_answered_in_its_chat_and_a_long_reply_is_split(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    long = " ".join(f"word{i:04}" for i in range(1000))  # 9,999 characters: three messages
    telegram.message("hello", chat_id=42, first_name="Ada")
    telegram.message(long, chat_id=7)
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(4)
        await settled(agent)
        assert await chat_history(agent, 42) == [("user", "hello"), ("assistant", "hello")]
        assert await chat_history(agent, 7) == [("user", long), ("assistant", long)]
        (session,) = [s for s in await agent.sessions.list_sessions() if s.metadata["chat_id"] == "42"]
        stored = (await agent.sessions.history(session.session_id))[0]

    assert telegram.texts(42) == ["hello"]
    parts = telegram.texts(7)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert " ".join(parts) == long, "split at word ends, nothing lost"
    assert all("reply_parameters" not in p for p in telegram.sent), "no reply quotes in a private chat"
    assert stored.author == "Ada"
    assert stored.metadata["chat"]["principal"] == {
        "channel": "telegram",
        "id": "42",
        "name": "Ada",
        "role": "user",
    }
    assert stored.metadata["chat"]["metadata"]["update_id"] == 1


async def test_a_forum_topic_is_its_own_conversation_and_replies_quote_the_message(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.message("in topic 5", chat_id=-100, user_id=1, chat_type="supergroup", topic=5)
    quoted = telegram.updates[-1]["message"]["message_id"]
    telegram.message("in general", chat_id=-100, user_id=1, chat_type="supergroup")
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(2)
        sessions = await agent.sessions.list_sessions("chat")

    assert {(s.metadata["chat_id"], s.metadata["thread_id"]) for s in sessions} == {
        ("-100", None),
        ("-100", "5"),
    }
    topic, general = sorted(telegram.sent, key=lambda p: "message_thread_id" not in p)
    assert (topic["text"], topic["message_thread_id"]) == ("in topic 5", 5)
    assert "message_thread_id" not in general
    assert topic["reply_parameters"] == {"message_id": quoted, "allow_sending_without_reply": True}


async def test_the_chat_shows_typing_while_a_turn_runs(tmp_path: Path, telegram: FakeTelegram) -> None:
    gate = Gate()
    telegram.message("think hard", chat_id=42)
    async with bot(tmp_path, telegram, {"gate": gate}):
        await gate.entered.wait()

        async def typing() -> bool:
            return {"chat_id": "42", "action": "typing"} in telegram.actions

        await eventually(typing)
        assert telegram.sent == []
        gate.release.set()
        await telegram.wait_sent(1)
    assert telegram.texts() == ["think hard"]


async def test_new_starts_a_fresh_session_for_the_chat(tmp_path: Path, telegram: FakeTelegram) -> None:
    telegram.message("one")
    telegram.message("/new@turnkit_test_bot")
    telegram.message("two")
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(3)
        histories = [
            texts(await agent.sessions.history(s.session_id)) for s in await agent.sessions.list_sessions()
        ]

    assert telegram.texts() == ["one", NEW_SESSION_REPLY, "two"]
    assert sorted(histories) == [
        [("user", "one"), ("assistant", "one")],
        [("user", "two"), ("assistant", "two")],
    ]


async def test_a_refused_sender_gets_the_polite_reply_and_a_denied_turn_is_stored(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.message("let me in", chat_id=666)
    telegram.message("hi", chat_id=1)
    async with bot(tmp_path, telegram, {"only-alice": OnlyAlice()}) as agent:
        await telegram.wait_sent(2)
        await settled(agent)
        (refused,) = [s for s in await agent.sessions.list_sessions() if s.metadata["chat_id"] == "666"]
        (turn,) = await agent.store.turns(refused.session_id)
        history = texts(await agent.sessions.history(refused.session_id))

    assert telegram.texts(666) == [ChatSettings().denied_reply]
    assert telegram.texts(1) == ["hi"]
    assert turn.status == "denied"
    assert turn.error is not None and "only Alice may talk to this bot" in turn.error
    assert history == [("user", "let me in")], "the refused message is stored, unanswered"


async def test_other_updates_are_skipped_and_confirmed(tmp_path: Path, telegram: FakeTelegram) -> None:
    telegram.message(None, sticker={"file_id": "CAAD", "emoji": "👍"})
    telegram.add({"edited_message": {"message_id": 1, "chat": {"id": 42, "type": "private"}, "text": "edit"}})
    telegram.add({"my_chat_member": {"chat": {"id": 42, "type": "private"}}})
    last = telegram.message("after")
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(1)

        async def confirmed() -> bool:
            return telegram.polls[-1] == last + 1

        await eventually(confirmed)
        state = await agent.context.storage("chat").list(STATE)
        history = await chat_history(agent, 42)

    assert telegram.texts() == ["after"]
    assert telegram.updates == [], "all four were confirmed"
    assert [r.value for r in state] == [{"offset": last + 1}]
    assert history == [("user", "after"), ("assistant", "after")]


# ---------------------------------------------------------------- restarts


async def test_the_offset_survives_a_restart_nothing_lost_nothing_repeated(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    for text in ("one", "two", "three"):
        telegram.message(text)
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(3)
        await settled(agent)

    telegram.message("four")
    telegram.message("five")
    first_poll = len(telegram.polls)
    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(5)
        await settled(agent)
        history = await chat_history(agent, 42)

    assert telegram.texts() == ["one", "two", "three", "four", "five"]
    assert telegram.polls[first_poll] == 4, "the new agent polls from the stored offset"
    assert [text for role, text in history if role == "user"] == ["one", "two", "three", "four", "five"]


async def test_a_reply_not_sent_before_a_stop_is_sent_at_restart_without_a_second_turn(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.message("slow")
    gate = Gate()
    async with telegram_agent(tmp_path, telegram, {"gate": gate}) as agent:
        async with serving(agent):
            await gate.entered.wait()
        gate.release.set()  # the turn completes after the channel stopped: its reply is stored, not sent
    assert telegram.sent == []

    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(1)
        await settled(agent)
        history = await chat_history(agent, 42)
        statuses = await turn_statuses(agent)

    assert telegram.texts() == ["slow"]
    assert history == [("user", "slow"), ("assistant", "slow")]
    assert statuses == ["completed"]


async def test_a_turn_cut_off_by_a_crash_is_rerun_once_and_its_reply_sent(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.message("slow")
    gate = Gate()  # never released
    async with telegram_agent(tmp_path, telegram, {"gate": gate}) as agent:
        async with serving(agent):
            await gate.entered.wait()
        await agent.orchestrator.stop(timeout=0)  # the process "dies": the turn stays running

    async with bot(tmp_path, telegram) as agent:
        await telegram.wait_sent(1)
        await settled(agent)
        history = await chat_history(agent, 42)
        statuses = await turn_statuses(agent)

    assert telegram.texts() == ["slow"]
    assert history == [("user", "slow"), ("assistant", "slow")], "the message is stored once"
    assert statuses == ["interrupted", "completed"], "the orchestrator re-ran it; the channel did not"


async def test_turnkit_serve_answers_with_the_token_from_the_environment_and_stops_on_sigterm(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    config = tmp_path / "turnkit.toml"
    config.write_text(
        '[store]\nurl = "t.db"\n\n[service.chat]\nchannels = ["telegram"]\n\n'
        f'[service.chat.telegram]\nbase_url = "{telegram.base_url}"\npoll_timeout = 1\n'
    )
    telegram.message("hello from the phone")
    process = await asyncio.create_subprocess_exec(
        *turnkit_command(),
        "--config",
        str(config),
        "serve",
        env=subprocess_env(env={"TELEGRAM_BOT_TOKEN": telegram.token}),
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await telegram.wait_sent(1, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0, stderr.decode()
    assert telegram.texts() == ["hello from the phone"]
    assert telegram.token.encode() not in stderr


# ---------------------------------------------------------------- errors


async def test_a_refused_token_ends_serving_with_a_clear_error_that_hides_the_token(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wrong = "999:WRONG-secret"
    agent = build_agent(tmp_path, services=[ChatService()], service=chat_table(telegram.base_url, wrong))
    async with agent:
        with pytest.raises(TurnkitError) as raised:
            await agent.serve()

    message = str(raised.value)
    assert "Telegram getMe: 401 Unauthorized" in message
    assert "check [service.chat.telegram] token" in message
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("401 Unauthorized" in e for e in errors), errors
    assert wrong not in message and wrong not in caplog.text
    assert "bot[secret]/getMe" in caplog.text, "httpx's request line is logged with the token hidden"


async def test_network_errors_are_retried_with_the_configured_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    fake = FakeTelegram()
    fake.message("hello")
    table = chat_table(f"http://127.0.0.1:{port}", fake.token, retry_delay=0.05)
    agent = build_agent(tmp_path, services=[ChatService()], service=table)
    retries = [r for r in caplog.records if "retrying in 0.05 s" in r.getMessage()]

    async def retried_twice() -> bool:
        retries[:] = [r for r in caplog.records if "retrying in 0.05 s" in r.getMessage()]
        return len(retries) >= 2

    async with agent, serving(agent):
        await eventually(retried_twice)  # nobody listens yet
        await fake.start(port)
        try:
            await fake.wait_sent(1)
        finally:
            await fake.stop()

    assert fake.texts() == ["hello"]
    assert all(
        r.levelno == logging.WARNING and "getMe failed (ConnectError" in r.getMessage() for r in retries
    )


async def test_without_a_token_serving_fails_naming_the_setting(tmp_path: Path) -> None:
    table = {"chat": {"channels": ["telegram"], "telegram": {"token_env": "TURNKIT_TEST_UNSET_TOKEN"}}}
    async with running_agent(tmp_path, services=[ChatService()], service=table) as agent:
        with pytest.raises(
            TurnkitError, match=r"\[service.chat.telegram\]: no bot token.*TURNKIT_TEST_UNSET_TOKEN"
        ):
            await agent.serve()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("poll_timeout", 0, "'poll_timeout' must be >= 1: 0"),
        ("base_url", "api.telegram.org", "'base_url' must match"),
    ],
)
async def test_a_bad_setting_is_a_configuration_error_naming_it(
    tmp_path: Path, key: str, value: object, problem: str
) -> None:
    table = {"chat": {"telegram": {key: value}}}
    with pytest.raises(ConfigError, match=re.escape(problem) + r".*@ \$\.service\.chat\.telegram"):
        async with running_agent(tmp_path, services=[ChatService()], service=table):
            pass
