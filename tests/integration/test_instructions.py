"""Instructions through a real agent: from the configuration or a file, a session's own, the
``turn_instructions`` pipeline, forks, and what each turn records.

The model is the built-in echo model, with :class:`ModelSpy` seeing every
prompt it is asked; the store a SQLite file. Issue 14's reproduction comes
first: ``[agent] instructions`` used to be refused as an extra field, and
nothing could give the model a system prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from turnkit.agent import Agent
from turnkit.config import load_config
from turnkit.errors import ConfigError, SessionError, TurnkitError
from turnkit.manager import PluginManager
from turnkit_hookspecs import Deny, ForkOptions, Message, Prompt, TurnInfo, hookimpl

from tests.support.agents import ModelSpy, running_agent, texts

TERSE = "You are terse. Answer in one line."


def first(prompt: Prompt) -> tuple[str, str, bool]:
    """The prompt's first message: role, text, and whether it is marked as the instructions."""
    message = prompt.messages[0]
    return message.role, message.text, message.metadata.get("instructions") is True


class Shaper:
    """A ``turn_instructions`` plugin: records what it is given, returns ``shape(text)``."""

    def __init__(self, shape: Callable[[str], str]) -> None:
        self.shape = shape
        self.seen: list[tuple[int, str]] = []

    @hookimpl
    def turn_instructions(self, turn: TurnInfo, instructions: str) -> str | None:
        self.seen.append((turn.number, instructions))
        return self.shape(instructions)


async def test_agent_instructions_from_the_configuration_reach_the_model_first(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}, agent={"instructions": TERSE}) as agent:
        result = await agent.send("hello")
        assert result.turn.status == "completed"
        assert result.reply is not None and result.reply.text == "hello", "the echo model answers the user"
        [prompt] = spy.prompts
        assert first(prompt) == ("system", TERSE, True)
        assert texts(prompt.messages[1:]) == [("user", "hello")]
        [turn] = await agent.store.turns(result.turn.session_id)
        assert turn.instructions == TERSE
        history = await agent.sessions.history(result.turn.session_id)
        assert texts(history) == [("user", "hello"), ("assistant", "hello")], "instructions are not history"


async def test_the_instructions_come_before_the_summary_of_a_compressed_session(tmp_path: Path) -> None:
    spy = ModelSpy()
    tables = {"agent": {"instructions": TERSE}, "turns": {"keep_recent": 1}}
    async with running_agent(tmp_path, plugins={"spy": spy}, **tables) as agent:
        sid = (await agent.send("one")).turn.session_id
        await agent.send("two", sid)
        await (await agent.sessions.extension(sid, "tester")).request_compression("long")
        await agent.send("three", sid)
        prompt = spy.prompts[-1]
        assert first(prompt) == ("system", TERSE, True)
        assert prompt.messages[1].role == "system" and "instructions" not in prompt.messages[1].metadata
        assert "covers_upto" in prompt.messages[1].metadata, "then the summary"
        assert texts(prompt.messages[2:]) == [("assistant", "two"), ("user", "three")]


async def test_without_instructions_the_prompt_starts_with_the_history(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}) as agent:
        result = await agent.send("hello")
        assert texts(spy.prompts[0].messages) == [("user", "hello")]
        assert (await agent.store.turns(result.turn.session_id))[0].instructions is None


def _agent_from_file(config_file: Path, *plugins: tuple[str, object]) -> Agent:
    config = load_config(config_file, env={})
    manager = PluginManager(config.plugins)
    for name, plugin in plugins:
        manager.register(plugin, name)
    return Agent(config, manager=manager, env={})


async def test_instructions_file_is_read_relative_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "prompt.md").write_text("# Support desk\n\nBe kind.\n", encoding="utf-8")
    (folder / "turnkit.toml").write_text('[agent]\ninstructions_file = "prompt.md"\n[store]\nurl = "t.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spy = ModelSpy()
    async with _agent_from_file(folder / "turnkit.toml", ("spy", spy)) as agent:
        await agent.send("hello")
    assert first(spy.prompts[0]) == ("system", "# Support desk\n\nBe kind.\n", True)


async def test_a_missing_instructions_file_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config_file = tmp_path / "turnkit.toml"
    config_file.write_text('[agent]\ninstructions_file = "missing.md"\n[store]\nurl = "t.db"\n')
    agent = _agent_from_file(config_file)
    with pytest.raises(ConfigError) as caught:
        await agent.start()
    assert str(caught.value) == (
        f"{config_file}: cannot read {tmp_path / 'missing.md'}: No such file or directory"
        " @ $.agent.instructions_file"
    )
    assert not (tmp_path / "t.db").exists(), "nothing was opened"
    with pytest.raises(TurnkitError, match="not started"):
        agent.store  # noqa: B018


async def test_an_instructions_file_that_is_not_a_text_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompt.bin").write_bytes(b"\xff\xfe binary")
    (tmp_path / "folder.md").mkdir()
    for name, problem in (("prompt.bin", "is not UTF-8 text"), ("folder.md", "is not a regular file")):
        config_file = tmp_path / "turnkit.toml"
        config_file.write_text(f'[agent]\ninstructions_file = "{name}"\n[store]\nurl = "t.db"\n')
        with pytest.raises(ConfigError, match=f"{problem}.* @ \\$.agent.instructions_file$"):
            await _agent_from_file(config_file).start()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'instructions = "Be brief."\ninstructions_file = "prompt.md"',
            "give instructions or instructions_file, not both @ $.agent.instructions_file",
        ),
        ('instructions = "a\\u0000b"', "holds a NUL character (at character 1) @ $.agent.instructions"),
        ('instructions_file = " "', "must not be empty @ $.agent.instructions_file"),
    ],
)
def test_unusable_instructions_settings_are_one_line_naming_the_key(
    tmp_path: Path, table: str, problem: str
) -> None:
    config_file = tmp_path / "turnkit.toml"
    config_file.write_text(f"[agent]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, env={})
    assert str(caught.value) == f"{config_file}: {problem}"


async def test_a_session_override_wins_and_can_be_cleared(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}, agent={"instructions": TERSE}) as agent:
        sid = (await agent.sessions.open()).session_id
        assert await agent.sessions.instructions(sid) is None
        await agent.send("agent's", sid)
        await agent.sessions.set_instructions(sid, "Answer in French.")
        assert await agent.sessions.instructions(sid) == "Answer in French."
        await agent.send("session's", sid)
        await agent.sessions.set_instructions(sid, "")
        await agent.send("none", sid)
        await agent.sessions.set_instructions(sid, None)
        await agent.send("agent's again", sid)

        starts = [first(prompt) for prompt in spy.prompts]
        assert starts[0] == ("system", TERSE, True)
        assert starts[1] == ("system", "Answer in French.", True)
        assert starts[2][2] is False, "an empty override means no instructions at all"
        assert starts[3] == ("system", TERSE, True)
        used = [turn.instructions for turn in await agent.store.turns(sid)]
        assert used == [TERSE, "Answer in French.", None, TERSE]


async def test_an_override_set_by_another_process_reaches_the_next_turn(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with (
        running_agent(tmp_path, plugins={"spy": spy}, agent={"instructions": TERSE}) as runner,
        running_agent(tmp_path, agent={"instructions": TERSE}) as other,
    ):
        sid = (await runner.send("first")).turn.session_id  # the runner now caches the session
        await other.sessions.set_instructions(sid, "Set by another worker.")
        await runner.send("second", sid)
        assert first(spy.prompts[-1]) == ("system", "Set by another worker.", True)


async def test_the_pipeline_shapes_the_instructions(tmp_path: Path) -> None:
    shaper = Shaper(lambda text: f"{text}\nToday is Tuesday.")
    spy = ModelSpy()
    plugins = {"shaper": shaper, "spy": spy}
    async with running_agent(tmp_path, plugins=plugins, agent={"instructions": TERSE}) as agent:
        sid = (await agent.send("one")).turn.session_id
        await agent.sessions.set_instructions(sid, "Own rules.")
        await agent.send("two", sid)
        assert shaper.seen == [(1, TERSE), (2, "Own rules.")]
        shaped = [f"{TERSE}\nToday is Tuesday.", "Own rules.\nToday is Tuesday."]
        assert [first(p)[1] for p in spy.prompts] == shaped
        assert [turn.instructions for turn in await agent.store.turns(sid)] == shaped


async def test_the_pipeline_can_add_instructions_or_remove_them(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with running_agent(tmp_path, plugins={"add": Shaper(lambda t: t or "Added."), "spy": spy}) as agent:
        await agent.send("hello")
    assert first(spy.prompts[0]) == ("system", "Added.", True)
    spy = ModelSpy()
    plugins = {"remove": Shaper(lambda t: " "), "spy": spy}
    async with running_agent(tmp_path, db="t2.db", plugins=plugins, agent={"instructions": TERSE}) as agent:
        result = await agent.send("hello")
        assert texts(spy.prompts[0].messages) == [("user", "hello")], "blank text: no instructions"
        assert (await agent.store.turns(result.turn.session_id))[0].instructions is None


async def test_instructions_the_store_cannot_keep_fail_the_turn_not_the_commit(tmp_path: Path) -> None:
    async with running_agent(tmp_path, plugins={"bad": Shaper(lambda t: "a\x00b")}) as agent:
        result = await agent.send("hello")
        assert result.turn.status == "failed"
        assert result.turn.error == (
            "TurnkitError: the text turn_instructions left holds a NUL character (at character 1)"
        )
        [turn] = await agent.store.turns(result.turn.session_id)
        assert (turn.status, turn.instructions) == ("failed", None)


async def test_a_fork_starts_with_its_parents_instructions(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}, agent={"instructions": TERSE}) as agent:
        sid = (await agent.send("hello")).turn.session_id
        await agent.sessions.set_instructions(sid, "Parent's own.")
        child = await (await agent.sessions.extension(sid, "tester")).fork(ForkOptions("explore"))
        assert await agent.sessions.instructions(child) == "Parent's own."
        await agent.send("in the fork", child)
        assert first(spy.prompts[-1]) == ("system", "Parent's own.", True)


async def test_a_failed_turn_records_its_instructions_a_denied_one_none(tmp_path: Path) -> None:
    class Refuse:
        @hookimpl
        def turn_authorize(self, message: Message) -> Deny | None:
            return Deny("no") if message.text == "deny me" else None

    class Broken:
        @hookimpl(tryfirst=True)
        def turn_reply(self, prompt: Prompt) -> Message | None:
            if prompt.messages[-1].text == "fail me":
                raise RuntimeError("model down")
            return None

    plugins = {"refuse": Refuse(), "broken": Broken()}
    async with running_agent(tmp_path, plugins=plugins, agent={"instructions": TERSE}) as agent:
        sid = (await agent.send("deny me")).turn.session_id
        await agent.send("fail me", sid)
        turns = await agent.store.turns(sid)
        assert [(t.status, t.instructions) for t in turns] == [("denied", None), ("failed", TERSE)]


async def test_set_instructions_refuses_what_it_cannot_keep(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        sid = (await agent.sessions.open()).session_id
        with pytest.raises(SessionError, match="no session 'ghost'"):
            await agent.sessions.set_instructions("ghost", "x")
        with pytest.raises(SessionError, match="no session 'ghost'"):
            await agent.sessions.instructions("ghost")
        refused = f"instructions for session '{sid}' refused: the text holds a NUL"
        with pytest.raises(ValueError, match=refused):
            await agent.sessions.set_instructions(sid, "a\x00")
        with pytest.raises(ValueError, match="is longer than 1000000 characters"):
            await agent.sessions.set_instructions(sid, "x" * 1_000_001)
        with pytest.raises(TypeError, match="must be a str or None, got int"):
            await agent.sessions.set_instructions(sid, 42)  # type: ignore[arg-type]
        assert await agent.sessions.instructions(sid) is None
