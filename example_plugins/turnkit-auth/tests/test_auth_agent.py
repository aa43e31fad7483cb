"""The plugin in a real agent (the runtime's ``turnkit_agent`` kit), loaded through its entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from auth_helpers import GROUP, NAME, declared_entry_point, load_plugin
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness
from turnkit_auth import AuthPlugin, AuthSettings
from turnkit_hookspecs import Plugin, TurnResult

ROLES = {"http:alice": "user", "telegram:42": "admin", "http:eve": "guest"}


def denied(result: TurnResult) -> str:
    """The reason of a turn this plugin denied, checked to come from it."""
    assert result.turn.status == "denied"
    assert result.deny is not None and result.deny.plugin == NAME
    return result.deny.reason


# ------------------------------------------------------------------ loading


def test_the_entry_point_names_the_plugin_class() -> None:
    entry_point = declared_entry_point()
    assert (entry_point.group, entry_point.name, entry_point.value) == (
        GROUP,
        NAME,
        "turnkit_auth:AuthPlugin",
    )
    assert entry_point.load() is AuthPlugin
    assert issubclass(AuthPlugin, Plugin) and AuthPlugin.settings_class is AuthSettings


def test_two_agents_in_one_process_keep_their_own_rules(tmp_path: Path) -> None:
    """The runtime makes one instance per agent from the entry point's class: nothing is shared."""
    shop, office = AgentHarness(tmp_path / "shop"), AgentHarness(tmp_path / "office")
    try:
        shop.register(load_plugin(), NAME, settings={"roles": {"http:alice": "user"}})
        office.register(load_plugin(), NAME, settings={"roles": {"http:bob": "user"}})
        assert shop.send("hi", initiator_id="http:alice").turn.status == "completed"
        assert office.send("hi", initiator_id="http:alice").turn.status == "denied"
        assert office.send("hi", initiator_id="http:bob").turn.status == "completed"
    finally:
        shop.stop()
        office.stop()


def test_loads_and_guards_without_the_chat_service(turnkit_agent: AgentHarness) -> None:
    """The chat points are optional hooks: an agent without the chat service still starts and is guarded."""
    turnkit_agent.register(load_plugin(), NAME, settings={"roles": ROLES})
    allowed = turnkit_agent.send("hi", initiator_id="http:alice")
    refused = turnkit_agent.send("hi", initiator_id="http:mallory")
    assert "chat" not in turnkit_agent.agent.services
    assert allowed.turn.status == "completed" and refused.turn.status == "denied"
    points = {c.point for c in turnkit_agent.trace(allowed.turn.turn_id) if c.plugin == NAME}
    assert points == {"turn_authorize"}


# ------------------------------------------------------------------ turns


def test_allowed_and_denied_turns(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(load_plugin(), NAME, settings={"roles": ROLES, "deny_reason": "members only"})

    alice = turnkit_agent.send("hello", initiator_id="http:alice")
    admin = turnkit_agent.send("status?", initiator_id="telegram:42")
    guest = turnkit_agent.send("let me in", initiator_id="http:eve")
    stranger = turnkit_agent.send("let me in", initiator_id="http:mallory")
    malformed = turnkit_agent.send("let me in", initiator_id="mallory")

    assert alice.turn.status == admin.turn.status == "completed"
    assert alice.reply is not None and alice.reply.text == "hello"
    assert denied(guest) == "members only (http:eve has role 'guest', which allow_roles does not list)"
    assert denied(stranger) == "members only (http:mallory has no role and default_role is unset)"
    assert denied(malformed).startswith("members only ('mallory' is not a principal id: it has no ':'")
    # a denied turn keeps the message and gets no reply
    assert [m.text for m in turnkit_agent.history(guest.turn.session_id)] == ["let me in"]


def test_the_trace_shows_who_denied_and_why(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(load_plugin(), NAME, settings={"roles": ROLES})
    allowed = turnkit_agent.send("hello", initiator_id="http:alice")
    refused = turnkit_agent.send("hello", initiator_id="http:mallory")

    [allow_call] = [c for c in turnkit_agent.trace(allowed.turn.turn_id) if c.point == "turn_authorize"]
    assert (allow_call.plugin, allow_call.outcome) == (NAME, "ok")
    refused_calls = turnkit_agent.trace(refused.turn.turn_id)
    [deny_call] = [c for c in refused_calls if c.point == "turn_authorize"]
    assert (deny_call.plugin, deny_call.kind, deny_call.outcome) == (NAME, "guard", "deny")
    assert deny_call.error == denied(refused)
    assert "turn_reply" not in {c.point for c in refused_calls}  # the model was never asked


@pytest.mark.parametrize(
    ("initiators", "initiator", "initiator_id", "status"),
    [
        pytest.param({}, "system", "task:nightly", "completed", id="tasks-run-by-default"),
        pytest.param({}, "agent", "billing", "completed", id="peers-by-default"),
        pytest.param({}, "extension", "summarizer", "completed", id="forks-by-default"),
        pytest.param({}, "user", None, "completed", id="local-by-default"),
        pytest.param({"local": "deny"}, "user", None, "denied", id="local-denied"),
        pytest.param({"system": "check"}, "system", "task:nightly", "completed", id="listed-task"),
        pytest.param({"system": "check"}, "system", "task:cleanup", "denied", id="unlisted-task"),
        pytest.param({"agent": "check"}, "agent", "billing", "completed", id="listed-agent"),
        pytest.param({"agent": "check"}, "agent", "crm", "denied", id="unlisted-agent"),
        pytest.param({"user": "allow"}, "user", "http:mallory", "completed", id="users-open"),
    ],
)
def test_initiator_rules_in_a_real_agent(
    turnkit_agent: AgentHarness,
    initiators: dict[str, str],
    initiator: Any,
    initiator_id: str | None,
    status: str,
) -> None:
    roles = {**ROLES, "task:nightly": "admin", "agent:billing": "user"}
    turnkit_agent.register(load_plugin(), NAME, settings={"roles": roles, "initiators": initiators})
    result = turnkit_agent.send("work", initiator=initiator, initiator_id=initiator_id)
    assert result.turn.status == status
    assert (result.turn.initiator, result.turn.initiator_id) == (initiator, initiator_id)


def test_a_guard_that_fails_denies(turnkit_agent: AgentHarness) -> None:
    """An exception while deciding is a deny (fail closed), recorded in the trace, never an allow."""

    class UnreachableRoles(AuthSettings):
        def role_of(self, principal_id: str) -> str | None:
            raise OSError("role directory unreachable")

    class Failing(AuthPlugin):
        settings_class = UnreachableRoles

    turnkit_agent.register(Failing(), NAME, settings={"roles": ROLES})
    result = turnkit_agent.send("hello", initiator_id="http:alice")
    assert denied(result) == "auth failed: OSError('role directory unreachable')"
    [call] = [c for c in turnkit_agent.trace(result.turn.turn_id) if c.point == "turn_authorize"]
    assert (call.outcome, call.error) == ("error", "OSError('role directory unreachable')")


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {"allow_role": ["admin"]},
            r"extra fields found \(allow_role\) @ \$\.plugin\.auth$",
            id="unknown-key",
        ),
        pytest.param(
            {"roles": {"alice": "admin"}},
            r"roles: 'alice' is not a principal id: it has no ':' .* @ \$\.plugin\.auth$",
            id="principal-without-channel",
        ),
        pytest.param(
            {"initiators": {"system": "sometimes"}},
            r"expected one of 'check', 'allow', 'deny' @ \$\.plugin\.auth\.initiators\.system$",
            id="bad-rule",
        ),
        pytest.param(
            {"channels": {"telegram": ["owner"]}},
            r"channels\.telegram: role 'owner' is not in allow_roles.* @ \$\.plugin\.auth$",
            id="channel-role-never-allowed",
        ),
        pytest.param(
            {"record_principals": "yes"},
            r"expected bool, got str 'yes' @ \$\.plugin\.auth\.record_principals$",
            id="bad-type",
        ),
    ],
)
def test_bad_configuration_stops_the_agent_naming_the_key(
    turnkit_agent: AgentHarness, table: dict[str, Any], expected: str
) -> None:
    turnkit_agent.register(load_plugin(), NAME, settings=table)
    with pytest.raises(ConfigError, match=expected):
        turnkit_agent.start()


def test_settings_that_admit_nobody_are_reported_at_start(
    turnkit_agent: AgentHarness, caplog: pytest.LogCaptureFixture
) -> None:
    turnkit_agent.register(load_plugin(), NAME, settings={"roles": {"http:eve": "guest"}})
    with caplog.at_level("WARNING"):
        turnkit_agent.start()
    assert (
        "no principal has a role in allow_roles (admin, user): every user turn will be denied" in caplog.text
    )
