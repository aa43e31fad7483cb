"""Secrets stay secret: what a real agent stores, shows and logs holds ``[secret]``, never the value.

The secrets are an ``OPENAI_API_KEY`` named in ``[secrets] env`` and the
Telegram token the chat service's ``token_env`` names by default, set in the
agent's environment. A tool prints them (the shell service's ``cat`` of a
copy of an environment block, and of the agent's own
``/proc/PID/environ`` in the command-line test), plugins put them in
errors, denies, traces, context, the inbox and the log. Everything is read
back from the SQLite file itself, and through ``turnkit sessions export``
in a subprocess.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from turnkit_hookspecs import Deny, Message, SessionExtensionContext, ToolOutputBlock, hookimpl
from turnkit_services.chat import ChatService
from turnkit_services.shell import ShellService

from tests.support.agents import ModelSpy, running_agent
from tests.support.dists import SESSION_LINE, run_turnkit

KEY = "sk-proj-Zq81vXk2Lm0pRt7sW3yN"
TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRETS = (KEY, TOKEN)


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's environment holds both secrets (an agent reads ``os.environ`` when it is made)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)


def environ_block(root: Path) -> Path:
    """A file laid out like ``/proc/PID/environ``, holding the secrets among plain variables."""
    path = root / "environ"
    path.write_bytes(f"HOME=/home/agent\0OPENAI_API_KEY={KEY}\0TELEGRAM_BOT_TOKEN={TOKEN}\0LANG=C\0".encode())
    return path


def database_dump(db: Path) -> str:
    """Every row of every table of the SQLite file, as SQL text."""
    with sqlite3.connect(db) as connection:
        return "\n".join(connection.iterdump())


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret in {where}"


async def test_a_tool_printing_the_environment_leaves_only_markers(
    tmp_path: Path, agent_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    environ_block(root)
    spy = ModelSpy()
    model = {"script": [{"tool": "shell.exec", "args": {"argv": ["cat", "environ"]}}, {"text": "done"}]}
    with caplog.at_level(logging.DEBUG):
        async with running_agent(
            tmp_path,
            services=[ChatService(), ShellService()],
            plugins={"spy": spy},
            service={"shell": {"allow": ["cat"], "root": str(root)}, "chat": {"channels": []}},
            secrets={"env": ["OPENAI_API_KEY"]},
            model=model,
        ) as agent:
            result = await agent.send("print the environment")
            assert result.turn.status == "completed", result.turn.error
            history = await agent.store.messages(result.turn.session_id)
    [output] = [b for m in history for b in m.message.blocks if isinstance(b, ToolOutputBlock)]
    stdout = json.loads(output.output)["stdout"]
    assert stdout == "HOME=/home/agent\0OPENAI_API_KEY=[secret]\0TELEGRAM_BOT_TOKEN=[secret]\0LANG=C\0"
    seen = spy.prompts[1].messages[-1].blocks[0]  # what the model was given back, in the same turn
    assert isinstance(seen, ToolOutputBlock) and json.loads(seen.output)["stdout"] == stdout
    dump = database_dump(tmp_path / "t.db")
    assert_no_secret(dump, "the store")
    assert "OPENAI_API_KEY=[secret]" in dump
    assert_no_secret(caplog.text, "the log")


class Leaky:
    """Puts the key wherever a plugin can: a deny, an error, context, the inbox, an effect, the log."""

    def __init__(self) -> None:
        self.log = logging.getLogger("leaky.plugin")

    @hookimpl
    def turn_authorize(self, message: Message) -> Deny | None:
        return Deny(f"refused: the message names {KEY}") if message.text == "deny" else None

    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        if message.text == "fail":
            raise RuntimeError(f"upstream answered 401 for {KEY}")

    @hookimpl
    async def turn_completed(self, ctx: SessionExtensionContext) -> None:
        await ctx.contribute_context("credentials", f"the key is {KEY}")
        await ctx.send_to_agent("other", Message.of("user", f"use {KEY} and {TOKEN}"))
        self.log.warning("posting to https://api.telegram.org/bot%s/sendMessage", TOKEN)
        try:
            raise ValueError(f"bad key {KEY}")
        except ValueError:
            self.log.exception("effect failed")
        raise LookupError(f"no account for {KEY}")


async def test_errors_denies_traces_context_inbox_and_logs_hold_no_secret(
    tmp_path: Path, agent_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with running_agent(
            tmp_path,
            services=[ChatService()],
            plugins={"leaky": Leaky()},
            service={"chat": {"channels": []}},
            secrets={"env": ["OPENAI_API_KEY"]},
            agent={"log_level": "INFO"},  # a failed turn its caller waits for is logged at INFO
        ) as agent:
            await agent.store.register_agent("other")  # the inbox's addressee
            denied = await agent.send("deny")
            failed = await agent.send("fail", denied.turn.session_id)
            completed = await agent.send(f"hello, my key is {KEY}", denied.turn.session_id)
            await agent.dispatcher.drain()
            session_id = denied.turn.session_id
            store = agent.store
            assert denied.turn.error == "denied by leaky: refused: the message names [secret]"
            assert failed.turn.error is not None
            assert "raised RuntimeError('upstream answered 401 for [secret]')" in failed.turn.error
            [outcome] = await store.outcomes([denied.turn.turn_id])
            assert outcome.deny == Deny("refused: the message names [secret]", "leaky")
            assert completed.reply is not None and completed.reply.text == "hello, my key is [secret]"
            [context] = await store.pending_context(session_id)
            assert context.value == "the key is [secret]"
            [delivered] = await store.inbox("other")
            assert delivered.message.text == "use [secret] and [secret]"
    trace_errors = [r.error for r in await stored_trace(tmp_path, completed.turn.turn_id) if r.error]
    assert trace_errors == ["LookupError('no account for [secret]')"]
    assert_no_secret(database_dump(tmp_path / "t.db"), "the store")
    assert_no_secret(caplog.text, "the log")
    assert "upstream answered 401 for [secret]" in caplog.text  # the orchestrator's log line
    assert "https://api.telegram.org/bot[secret]/sendMessage" in caplog.text
    assert "ValueError: bad key [secret]" in caplog.text  # the traceback


async def stored_trace(tmp_path: Path, turn_id: str) -> list[object]:
    """The turn's trace as a later process reads it from the file."""
    from turnkit.config import StoreConfig
    from turnkit.store import open_store

    store = await open_store(StoreConfig(url=str(tmp_path / "t.db")), str(tmp_path))
    try:
        return list(await store.trace(turn_id))
    finally:
        await store.close()


def test_the_agents_own_environment_never_reaches_export_or_stderr(tmp_path: Path) -> None:
    """The issue's reproduction: a tool reads ``/proc/<agent pid>/environ`` in ``turnkit send``."""
    (tmp_path / "turnkit.toml").write_text(
        f"""
[store]
url = "t.db"

[secrets]
env = ["OPENAI_API_KEY"]

[service.shell]
allow = ["cat", "sh"]
allow_shell_string = true

[[model.script]]
tool = "shell.exec"
args = {{ argv = ["cat /proc/$PPID/environ"], shell = true }}

[[model.script]]  # refused, and logged, with the key in it
tool = "shell.exec"
args = {{ argv = ["cat"], cwd = "{KEY}" }}

[[model.script]]
text = "done"
"""
    )
    env = {"OPENAI_API_KEY": KEY, "TELEGRAM_BOT_TOKEN": TOKEN}
    sent = run_turnkit("send", "go", cwd=tmp_path, env=env, timeout=60)
    assert sent.returncode == 0, str(sent)
    assert_no_secret(sent.stdout + sent.stderr, "the output of turnkit send")
    assert "action shell.exec raised ValueError" in sent.stderr and "[secret]" in sent.stderr
    (session_id,) = SESSION_LINE.findall(sent.stderr)
    exported = run_turnkit("sessions", "export", session_id, cwd=tmp_path, timeout=60)
    assert exported.returncode == 0, str(exported)
    assert_no_secret(exported.stdout, "turnkit sessions export")
    outputs = [
        json.loads(block["output"])
        for message in exported.json()["messages"]
        for block in message["message"]["blocks"]
        if block["type"] == "tool_output" and not block["is_error"]
    ]
    assert "OPENAI_API_KEY=[secret]\0" in outputs[0]["stdout"]
    assert "TELEGRAM_BOT_TOKEN=[secret]\0" in outputs[0]["stdout"]
    shown = run_turnkit("sessions", "show", session_id, "--trace", "--audit", cwd=tmp_path, timeout=60)
    assert_no_secret(shown.stdout + shown.stderr, "turnkit sessions show")
