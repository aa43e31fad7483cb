"""What a plugin receives cannot change what others see or what is stored.

The contract's values are deep-frozen when they are built (``metadata``,
tool call ``args``, action results …), so a guard, pipeline or effect that
changes one in place gets a ``TypeError``, which its kind's rule turns into
a deny, a failed turn or a traced effect error. Even a plugin that swallows
that error has changed nothing: the model's prompt, ``history()``, the
caller's ``TurnResult`` and the stored rows all keep the original. The one
way to change a value is the one a pipeline returns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from turnkit.store import SQLiteStore
from turnkit_hookspecs import (
    ActionResult,
    Message,
    Prompt,
    Service,
    ToolCallBlock,
    TurnInfo,
    action,
    hookimpl,
)

from tests.support.agents import ModelSpy, running_agent

METADATA = {"source": "test", "tags": ["a", "b"], "chat": {"id": 7, "seen": []}}
SIGNED = {"signed": {"by": "signer", "keys": ["k1"]}}

#: Ways of changing a message's metadata in place, top-level and nested.
Mutation = Callable[[Message], None]
MUTATIONS: dict[str, Mutation] = {
    "set-item": lambda m: m.metadata.__setitem__("source", "tampered"),
    "update": lambda m: m.metadata.update(source="tampered"),
    "pop": lambda m: m.metadata.pop("source", None),
    "nested-list-append": lambda m: m.metadata["tags"].append("tampered"),
    "nested-dict-set": lambda m: m.metadata["chat"].__setitem__("id", 0),
    "deeply-nested": lambda m: m.metadata["chat"]["seen"].append("tampered"),
}
MUTATION_IDS = list(MUTATIONS)


def inbound() -> Message:
    """A message whose metadata shares nothing with :data:`METADATA`, which stays the reference."""
    return Message.of("user", "hello", metadata=copy.deepcopy(METADATA))


class Signer:
    """The allowed path: ``turn_outbound`` returns a new reply with metadata, which is stored."""

    @hookimpl
    def turn_outbound(self, message: Message) -> Message:
        return attrs.evolve(message, metadata={**message.metadata, **copy.deepcopy(SIGNED)})


class Tamper:
    """Applies ``mutation`` to the message its hook receives; with ``swallow``, ignores the error."""

    def __init__(self, mutation: Mutation, *, swallow: bool = False) -> None:
        self.mutation = mutation
        self.swallow = swallow
        self.errors: list[TypeError] = []

    def _tamper(self, message: Message) -> None:
        try:
            self.mutation(message)
        except TypeError as exc:
            self.errors.append(exc)
            if not self.swallow:
                raise


class TamperingGuard(Tamper):
    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        self._tamper(message)


class TamperingInbound(Tamper):
    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        self._tamper(message)


class TamperingPrompt(Tamper):
    @hookimpl
    def turn_prompt(self, prompt: Prompt) -> None:
        for message in prompt.messages:
            if message.role == "user":
                self._tamper(message)


class TamperingOutbound(Tamper):
    """Runs after :class:`Signer` (``trylast``), on the signed reply."""

    @hookimpl(trylast=True)
    def turn_outbound(self, message: Message) -> None:
        self._tamper(message)


class TamperingEffect(Tamper):
    @hookimpl
    def turn_completed(self, message: Message) -> None:
        self._tamper(message)


class TamperingReplyEffect(Tamper):
    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        self._tamper(reply)


#: The same kinds of change, on the reply's :data:`SIGNED` metadata.
REPLY_MUTATIONS: dict[str, Mutation] = {
    "set-item": lambda m: m.metadata.__setitem__("signed", False),
    "clear": lambda m: m.metadata.clear(),
    "nested-list-append": lambda m: m.metadata["signed"]["keys"].append("forged"),
    "nested-dict-set": lambda m: m.metadata["signed"].__setitem__("by", "forger"),
}


async def stored_metadata(store_path: Path, session_id: str) -> list[tuple[str, Any]]:
    """``(role, metadata)`` of each message as the SQLite file holds it, read by a store of its own."""
    store = SQLiteStore(str(store_path))
    await store.open()
    try:
        return [(m.message.role, m.message.metadata) for m in await store.messages(session_id)]
    finally:
        await store.close()


def assert_read_only_error(exc: BaseException | str) -> None:
    """The error tells the plugin author what happened and what to do instead."""
    text = str(exc)
    assert "read-only" in text and "attrs.evolve" in text, text


# ---------------------------------------------------------------------- each kind's rule


@pytest.mark.parametrize("mutation", MUTATION_IDS)
async def test_a_guard_changing_the_message_in_place_denies_the_turn(tmp_path: Path, mutation: str) -> None:
    guard = TamperingGuard(MUTATIONS[mutation])
    async with running_agent(tmp_path, plugins={"tamper": guard}) as agent:
        result = await agent.send(inbound())
        sid = result.turn.session_id

        assert result.turn.status == "denied"
        assert result.deny is not None and result.deny.plugin == "tamper"
        assert_read_only_error(result.deny.reason)
        [history] = await agent.sessions.history(sid)
        assert history.metadata == METADATA
    assert await stored_metadata(tmp_path / "t.db", sid) == [("user", METADATA)]


@pytest.mark.parametrize("mutation", MUTATION_IDS)
@pytest.mark.parametrize("plugin", [TamperingInbound, TamperingPrompt], ids=["turn_inbound", "turn_prompt"])
async def test_a_pipeline_changing_its_value_in_place_fails_the_turn_naming_it(
    tmp_path: Path, plugin: type[Tamper], mutation: str
) -> None:
    async with running_agent(tmp_path, plugins={"tamper": plugin(MUTATIONS[mutation])}) as agent:
        result = await agent.send(inbound())
        sid = result.turn.session_id

        assert result.turn.status == "failed" and result.reply is None
        assert result.turn.error is not None and "plugin 'tamper' raised TypeError" in result.turn.error
        assert_read_only_error(result.turn.error)
        [history] = await agent.sessions.history(sid)
        assert history.metadata == METADATA
    assert await stored_metadata(tmp_path / "t.db", sid) == [("user", METADATA)]


@pytest.mark.parametrize("mutation", list(REPLY_MUTATIONS))
async def test_an_outbound_pipeline_changing_the_reply_in_place_fails_the_turn(
    tmp_path: Path, mutation: str
) -> None:
    plugins = {"signer": Signer(), "tamper": TamperingOutbound(REPLY_MUTATIONS[mutation])}
    async with running_agent(tmp_path, plugins=plugins) as agent:
        result = await agent.send(inbound())
        assert result.turn.status == "failed" and result.reply is None
        assert result.turn.error is not None and "plugin 'tamper' raised TypeError" in result.turn.error
    assert await stored_metadata(tmp_path / "t.db", result.turn.session_id) == [("user", METADATA)]


@pytest.mark.parametrize("mutation", list(REPLY_MUTATIONS))
async def test_an_effect_changing_the_reply_in_place_is_traced_and_the_callers_result_keeps_it(
    tmp_path: Path, mutation: str
) -> None:
    effect = TamperingReplyEffect(REPLY_MUTATIONS[mutation])
    async with running_agent(tmp_path, plugins={"signer": Signer(), "tamper": effect}) as agent:
        result = await agent.send(inbound())
        sid = result.turn.session_id
        assert result.turn.status == "completed" and result.reply is not None
        await agent.dispatcher.drain()

        assert result.reply.metadata == SIGNED, "the caller's TurnResult is unchanged"
        assert [m.metadata for m in await agent.sessions.history(sid)] == [METADATA, SIGNED]
        [error] = effect.errors
        assert_read_only_error(error)
        # the effect's failure is recorded with the next commit
        await agent.send("again", sid)
        [call] = [t for t in await agent.store.trace(result.turn.turn_id) if t.point == "turn_completed"]
        assert (call.plugin, call.outcome) == ("tamper", "error")
        assert_read_only_error(call.error or "")
    assert (await stored_metadata(tmp_path / "t.db", sid))[:2] == [("user", METADATA), ("assistant", SIGNED)]


# ---------------------------------------------------------------------- even a plugin ignoring the error


SWALLOWING: dict[str, Callable[[Mutation], Tamper]] = {
    "guard": lambda m: TamperingGuard(m, swallow=True),
    "inbound": lambda m: TamperingInbound(m, swallow=True),
    "prompt": lambda m: TamperingPrompt(m, swallow=True),
    "effect": lambda m: TamperingEffect(m, swallow=True),
}


@pytest.mark.parametrize("mutation", MUTATION_IDS)
@pytest.mark.parametrize("where", list(SWALLOWING))
async def test_a_plugin_ignoring_the_error_has_changed_nothing_anyone_sees(
    tmp_path: Path, where: str, mutation: str
) -> None:
    tamper, spy = SWALLOWING[where](MUTATIONS[mutation]), ModelSpy()
    async with running_agent(tmp_path, plugins={"tamper": tamper, "spy": spy}) as agent:
        first = await agent.send(inbound())
        sid = first.turn.session_id
        await agent.dispatcher.drain()
        second = await agent.send(inbound(), sid)
        await agent.dispatcher.drain()

        assert (first.turn.status, second.turn.status) == ("completed", "completed")
        # what the model saw: the first message in the first turn, both in the second
        seen = [[m.metadata for m in prompt.messages if m.role == "user"] for prompt in spy.prompts]
        assert seen == [[METADATA], [METADATA, METADATA]]
        history = await agent.sessions.history(sid)
        assert [(m.role, m.metadata) for m in history] == [("user", METADATA), ("assistant", {})] * 2
        assert tamper.errors, "the plugin did try"
    assert await stored_metadata(tmp_path / "t.db", sid) == [("user", METADATA), ("assistant", {})] * 2


# ---------------------------------------------------------------------- the allowed path


class Labeller:
    """``turn_inbound`` returns a new message; the next implementation and the model see it."""

    @hookimpl(tryfirst=True)
    def turn_inbound(self, message: Message) -> Message:
        return attrs.evolve(message, metadata={**message.metadata, "lang": "en"})


class After:
    """A later ``turn_inbound`` implementation, recording the label it receives."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl(trylast=True)
    def turn_inbound(self, message: Message) -> None:
        self.seen.append(message.metadata.get("lang"))


async def test_a_pipeline_returning_a_new_value_changes_what_follows_and_what_is_stored(
    tmp_path: Path,
) -> None:
    after, spy = After(), ModelSpy()
    plugins = {"labeller": Labeller(), "after": after, "signer": Signer(), "spy": spy}
    async with running_agent(tmp_path, plugins=plugins) as agent:
        result = await agent.send(inbound())
        sid = result.turn.session_id

        assert result.turn.status == "completed" and result.reply is not None
        assert after.seen == ["en"], "the next implementation sees the returned value"
        [user] = [m for m in spy.prompts[0].messages if m.role == "user"]
        assert user.metadata == {**METADATA, "lang": "en"}, "and so does the model"
        assert result.reply.metadata == SIGNED
        history = await agent.sessions.history(sid)
    # the inbound message is stored as received (docs: turn_inbound); the rewritten reply is stored
    assert await stored_metadata(tmp_path / "t.db", sid) == [("user", METADATA), ("assistant", SIGNED)]
    assert [m.metadata for m in history] == [METADATA, SIGNED]


# ---------------------------------------------------------------------- tools and actions


class Notes(Service):
    """A service whose action hands out its own state."""

    name = "notes"

    def __init__(self) -> None:
        self.notes: list[str] = ["first"]
        self.got: list[Any] = []

    @action(tool=True)
    def add(self, text: str, tags: list[str]) -> dict[str, Any]:
        """Add a note."""
        self.got.append((text, list(tags)))
        self.notes.append(text)
        return {"notes": self.notes}


class ArgsTamper:
    """A ``tool_authorize`` guard that rewrites the call's args in place, ignores the error, allows."""

    def __init__(self) -> None:
        self.errors: list[TypeError] = []

    @hookimpl
    def tool_authorize(self, turn: TurnInfo, call: ToolCallBlock) -> None:
        for change in (
            lambda: call.args.__setitem__("text", "forged"),
            lambda: call.args["tags"].append("x"),
        ):
            try:
                change()
            except TypeError as exc:
                self.errors.append(exc)


async def test_a_tool_guard_cannot_change_the_call_the_action_runs_or_the_stored_call(tmp_path: Path) -> None:
    notes, guard = Notes(), ArgsTamper()
    model = {"script": [{"tool": "notes.add", "args": {"text": "tea", "tags": ["t"]}}, {"text": "noted"}]}
    async with running_agent(tmp_path, plugins={"tamper": guard}, services=[notes], model=model) as agent:
        result = await agent.send("note tea")
        assert result.turn.status == "completed"
        assert notes.got == [("tea", ["t"])]
        calls = [c for m in await agent.sessions.history(result.turn.session_id) for c in m.tool_calls]
        assert [c.args for c in calls] == [{"text": "tea", "tags": ["t"]}]
        assert len(guard.errors) == 2


async def test_an_action_result_cannot_change_the_service_that_returned_it(tmp_path: Path) -> None:
    notes = Notes()
    async with running_agent(tmp_path, services=[notes]) as agent:
        result: ActionResult = await agent.invoke("notes.add", {"text": "tea", "tags": []})
        assert result.ok and result.value == {"notes": ["first", "tea"]}
        with pytest.raises(TypeError, match="read-only"):
            result.value["notes"].append("forged")
        assert notes.notes == ["first", "tea"]


class SchemaTamper:
    """A ``turn_prompt`` pipeline that rewrites the schema of the tools on offer in place."""

    def __init__(self) -> None:
        self.errors: list[TypeError] = []

    @hookimpl
    def turn_prompt(self, prompt: Prompt) -> None:
        for tool in prompt.tools:
            try:
                tool.parameters["properties"].clear()
            except TypeError as exc:
                self.errors.append(exc)


async def test_a_prompt_pipeline_cannot_change_the_tools_later_turns_are_offered(tmp_path: Path) -> None:
    tamper, spy = SchemaTamper(), ModelSpy()
    async with running_agent(tmp_path, plugins={"tamper": tamper, "spy": spy}, services=[Notes()]) as agent:
        first = await agent.send("one")
        await agent.send("two", first.turn.session_id)
        offered = [[sorted(t.parameters["properties"]) for t in p.tools] for p in spy.prompts]
        assert offered == [[["tags", "text"]], [["tags", "text"]]]
        assert len(tamper.errors) == 2
