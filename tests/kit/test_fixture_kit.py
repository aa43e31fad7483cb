"""The pytest fixture kit (``turnkit.testing``) and plugin settings, through the fixture itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import attrs
import pytest
from turnkit.errors import ConfigError, PluginConfigureError
from turnkit.testing import AgentHarness, entry_point_plugin, tool_call
from turnkit_hookspecs import Deny, ExecutionContext, Message, Plugin, TurnInfo, hookimpl

pytest_plugins = ["pytester"]


@attrs.frozen
class GateSettings:
    allow: list[str] = attrs.field(factory=list)
    reason: str = "not on the list"


class Gate(Plugin):
    """A guard configured from ``[plugin.gate]``, remembering what it was configured with."""

    settings_class = GateSettings

    def __init__(self) -> None:
        self.configured_for: str | None = None

    async def configure(self, context: ExecutionContext) -> None:
        super().configure(context)
        self.configured_for = context.agent_id

    @hookimpl
    def turn_authorize(self, turn: TurnInfo) -> Deny | None:
        if turn.initiator_id in self.settings.allow:
            return None
        return Deny(self.settings.reason)


class Shout:
    @hookimpl
    def turn_outbound(self, message: Message) -> Message:
        return Message.of(message.role, message.text.upper())


def test_settings_come_from_the_plugin_table_and_configure_gets_the_context(
    turnkit_agent: AgentHarness,
) -> None:
    gate = Gate()
    turnkit_agent.register(gate, "gate", settings={"allow": ["alice"], "reason": "members only"})
    allowed = turnkit_agent.send("hi", initiator_id="alice")
    refused = turnkit_agent.send("hi", initiator_id="mallory")
    assert allowed.turn.status == "completed"
    assert refused.turn.status == "denied"
    assert refused.deny is not None and refused.deny.reason == "members only"
    assert refused.deny.plugin == "gate"
    assert gate.configured_for == turnkit_agent.agent.id


def test_a_wrong_settings_key_names_the_plugin_table(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(Gate(), "gate", settings={"alow": ["alice"]})
    with pytest.raises(ConfigError, match=r"alow.*\$\.plugin\.gate"):
        turnkit_agent.start()


def test_a_table_for_a_plugin_without_settings_is_refused(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(Shout(), "shout", settings={"loud": True})
    with pytest.raises(ConfigError, match=r"\[plugin\.shout\].*takes no settings"):
        turnkit_agent.start()


def test_a_plugin_failing_to_configure_stops_the_start(turnkit_agent: AgentHarness, tmp_path: Path) -> None:
    class Broken(Plugin):
        def configure(self, context: ExecutionContext) -> None:
            raise OSError("rules file unreadable")

    turnkit_agent.register(Broken(), "broken")
    expected = "'broken' failed to configure: OSError: rules file unreadable"
    with pytest.raises(PluginConfigureError, match=expected):
        turnkit_agent.start()
    # nothing was left running: a new harness can use the same store
    again = AgentHarness(tmp_path)
    try:
        assert again.send("still fine").turn.status == "completed"
    finally:
        again.stop()


def test_scripted_model_prompts_trace_and_history(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(Shout(), "shout")
    turnkit_agent.script("first answer")
    first = turnkit_agent.send("one")
    second = turnkit_agent.send("two", first.turn.session_id)
    assert first.reply is not None and first.reply.text == "FIRST ANSWER"
    assert second.reply is not None and second.reply.text == "TWO"  # the script ran out: echo
    assert [p.messages[-1].text for p in turnkit_agent.prompts] == ["one", "two"]
    calls = [(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(first.turn.turn_id)]
    assert ("turn_outbound", "shout", "value") in calls
    assert ("turn_reply", "turnkit-defaults", "value") in calls
    history = turnkit_agent.history(first.turn.session_id)
    assert [m.text for m in history] == ["one", "FIRST ANSWER", "two", "TWO"]


def test_tool_calls_in_the_script_reach_a_real_service(turnkit_agent: AgentHarness, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("kit works\n")
    turnkit_agent.add_service("shell", settings={"root": str(tmp_path), "allow": ["cat"]})
    turnkit_agent.script(tool_call("shell.exec", argv=["cat", "notes.txt"]))
    result = turnkit_agent.send("read my notes")
    assert result.reply is not None and "kit works" in result.reply.text


def test_audit_records_who_acted_on_the_session(turnkit_agent: AgentHarness) -> None:
    class Forker:
        @hookimpl
        async def turn_completed(self, ctx) -> None:  # type: ignore[no-untyped-def]
            await ctx.fork()

    turnkit_agent.register(Forker(), "forker")
    result = turnkit_agent.send("hi")
    events = turnkit_agent.audit(result.turn.session_id)
    assert [(e.action, e.extension_id) for e in events] == [("fork", "forker")]


def test_shaping_after_the_start_is_refused(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.send("hi")
    with pytest.raises(RuntimeError, match="cannot register a plugin: the agent has started"):
        turnkit_agent.register(Shout(), "shout")


def test_unknown_installed_service_is_named(turnkit_agent: AgentHarness) -> None:
    with pytest.raises(LookupError, match="no installed service is named 'chatt'"):
        turnkit_agent.add_service("chatt")


def test_the_fixture_reaches_any_pytest_run_through_the_entry_point(pytester: pytest.Pytester) -> None:
    """No conftest, no import of the fixture: the ``pytest11`` entry point provides it."""
    pytester.makepyfile(
        test_plugin=textwrap.dedent(
            """
            from turnkit_hookspecs import hookimpl

            class Polite:
                @hookimpl
                def turn_outbound(self, message):
                    return message.__class__.of(message.role, message.text + ", please")

            def test_polite(turnkit_agent):
                turnkit_agent.register(Polite(), "polite")
                turnkit_agent.script("sit down")
                assert turnkit_agent.send("hi").reply.text == "sit down, please"
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_entry_point_plugin_makes_the_plugin_as_an_agent_would(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "turnkit-gate"\n'
        '[project.entry-points."turnkit.plugins"]\ngate = "tests.kit.test_fixture_kit:Gate"\n'
    )
    made = entry_point_plugin(tmp_path, "gate")
    assert isinstance(made, Gate)
    assert made is not entry_point_plugin(tmp_path / "pyproject.toml", "gate")  # one instance per call
    with pytest.raises(LookupError, match="no 'turnkit.plugins' entry point named 'gaet'"):
        entry_point_plugin(tmp_path, "gaet")
