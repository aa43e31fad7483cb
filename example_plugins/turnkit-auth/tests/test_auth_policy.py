"""The plugin's own functions: principal ids, the settings' validation, and the guards' decisions."""

from __future__ import annotations

from typing import Any

import pytest
from turnkit_auth import (
    AuthSettings,
    MalformedPrincipalId,
    authorize_sender,
    authorize_turn,
    parse_principal_id,
    turn_principal,
)
from turnkit_hookspecs import PayloadError, TurnInfo, structure


def settings(**table: Any) -> AuthSettings:
    """``[plugin.auth]`` structured by the contract's converter, as the runtime does."""
    return structure(table, AuthSettings)


def turn(initiator: Any = "user", initiator_id: str | None = None) -> TurnInfo:
    return TurnInfo("t-1", "s-1", 1, initiator, initiator_id)


# ------------------------------------------------------------------ principal ids


@pytest.mark.parametrize(
    ("principal_id", "parts"),
    [
        ("telegram:42", ("telegram", "42")),
        ("http:alice@example.org", ("http", "alice@example.org")),
        ("http:urn:user:7", ("http", "urn:user:7")),
        ("matrix-bridge:Ann Lee", ("matrix-bridge", "Ann Lee")),
        ("task:nightly.report", ("task", "nightly.report")),
    ],
)
def test_principal_ids(principal_id: str, parts: tuple[str, str]) -> None:
    assert parse_principal_id(principal_id) == parts


@pytest.mark.parametrize(
    ("principal_id", "problem"),
    [
        ("alice", "it has no ':'"),
        (":alice", "the channel '' may hold only"),
        ("tele gram:42", "the channel 'tele gram' may hold only"),
        ("http:", "the user part is empty"),
        ("http: alice", "surrounding white space"),
        ("http:alice\n", "surrounding white space"),
        ("http:al\x00ice", "control or invisible characters"),
    ],
)
def test_malformed_principal_ids_say_what_is_wrong(principal_id: str, problem: str) -> None:
    with pytest.raises(MalformedPrincipalId) as caught:
        parse_principal_id(principal_id)
    message = str(caught.value)
    assert message.startswith(f"{principal_id!r} is not a principal id: ")
    assert problem in message and "expected <channel>:<user>" in message


# ------------------------------------------------------------------ settings


def test_defaults_check_people_and_let_the_agents_own_work_through() -> None:
    defaults = settings()
    assert defaults.roles == {} and defaults.default_role is None
    assert defaults.allow_roles == ["admin", "user"]
    rules = defaults.initiators
    assert (rules.user, rules.local, rules.system, rules.extension, rules.agent) == (
        "check",
        "allow",
        "allow",
        "allow",
        "allow",
    )
    assert defaults.record_principals is True


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"roles": {"alice": "admin"}}, "roles: 'alice' is not a principal id: it has no ':'"),
        ({"roles": {"http:alice": "site admin"}}, "roles['http:alice']: 'site admin' is not a role name"),
        ({"roles": {"http:alice": 1}}, r"expected str, got int 1 @ $.roles['http:alice']"),
        ({"default_role": ""}, "default_role: '' is not a role name"),
        ({"allow_roles": "admin"}, "expected a list, got str 'admin' @ $.allow_roles"),
        ({"allow_roles": ["admin", "-x"]}, "allow_roles[1]: '-x' is not a role name"),
        ({"channels": {"telegram": ["guest"]}}, "channels.telegram: role 'guest' is not in allow_roles"),
        ({"channels": {"tele gram": ["admin"]}}, "channels: 'tele gram' is not a channel name"),
        ({"initiators": {"user": "maybe"}}, "expected one of 'check', 'allow', 'deny' @ $.initiators.user"),
        ({"initiators": {"local": "check"}}, 'local: "check" is impossible'),
        ({"initiators": {"robot": "allow"}}, "extra fields found (robot) @ $.initiators"),
        ({"deny_reason": "  "}, "deny_reason: must not be empty"),
        ({"allow": ["alice"]}, "extra fields found (allow) @ $"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        settings(**table)
    assert message in str(caught.value)


# ------------------------------------------------------------------ turn decisions

ROLES = {"telegram:42": "admin", "http:alice": "user", "http:eve": "guest", "task:nightly": "admin"}


@pytest.mark.parametrize(
    ("initiator", "initiator_id", "principal"),
    [
        ("user", "telegram:42", "telegram:42"),
        ("user", None, None),
        ("system", "task:nightly", "task:nightly"),
        ("extension", "summarizer", "extension:summarizer"),
        ("agent", "billing", "agent:billing"),
        ("agent", None, None),
    ],
)
def test_turn_principal(initiator: Any, initiator_id: str | None, principal: str | None) -> None:
    assert turn_principal(turn(initiator, initiator_id)) == principal


def test_user_turns_are_admitted_by_role() -> None:
    rules = settings(roles=ROLES)
    assert authorize_turn(rules, turn("user", "telegram:42")) is None
    assert authorize_turn(rules, turn("user", "http:alice")) is None
    guest = authorize_turn(rules, turn("user", "http:eve"))
    assert guest is not None and guest.reason == (
        "not allowed to talk to this agent (http:eve has role 'guest', which allow_roles does not list)"
    )
    stranger = authorize_turn(rules, turn("user", "http:mallory"))
    assert stranger is not None
    assert stranger.reason.endswith("(http:mallory has no role and default_role is unset)")


def test_default_role_applies_to_strangers() -> None:
    assert authorize_turn(settings(default_role="user"), turn("user", "http:mallory")) is None
    refused = authorize_turn(settings(default_role="guest"), turn("user", "http:mallory"))
    assert refused is not None and "has role 'guest'" in refused.reason


def test_a_malformed_principal_is_denied_even_with_a_default_role() -> None:
    refused = authorize_turn(settings(default_role="user", deny_reason="members only"), turn("user", "alice"))
    assert refused is not None
    assert refused.reason.startswith("members only ('alice' is not a principal id: it has no ':'")


@pytest.mark.parametrize(
    ("initiators", "initiator", "initiator_id", "allowed"),
    [
        ({}, "system", "task:nightly", True),
        ({}, "system", "task:unknown", True),
        ({}, "extension", "summarizer", True),
        ({}, "agent", "billing", True),
        ({}, "user", None, True),
        ({"system": "check"}, "system", "task:nightly", True),
        ({"system": "check"}, "system", "task:unknown", False),
        ({"system": "check"}, "system", None, False),
        ({"agent": "deny"}, "agent", "billing", False),
        ({"local": "deny"}, "user", None, False),
        ({"user": "allow"}, "user", "http:mallory", True),
        ({"user": "allow"}, "user", "not-an-id", True),
        ({"user": "deny"}, "user", "telegram:42", False),
    ],
)
def test_initiator_rules(
    initiators: dict[str, str], initiator: Any, initiator_id: str | None, allowed: bool
) -> None:
    decision = authorize_turn(settings(roles=ROLES, initiators=initiators), turn(initiator, initiator_id))
    assert (decision is None) is allowed


def test_a_refused_initiator_kind_is_named() -> None:
    refused = authorize_turn(settings(initiators={"agent": "deny"}), turn("agent", "billing"))
    assert refused is not None and refused.reason.endswith(
        '(agent turns are refused: initiators.agent = "deny")'
    )
    nobody = authorize_turn(settings(initiators={"system": "check"}), turn("system", None))
    assert nobody is not None and nobody.reason.endswith("(the turn names no principal)")


def test_an_initiator_the_plugin_does_not_know_is_denied() -> None:
    refused = authorize_turn(settings(default_role="admin"), turn("robot", "r2"))
    assert refused is not None and refused.reason.endswith("(unknown initiator 'robot')")


# ------------------------------------------------------------------ chat sender decisions


def test_unlisted_channels_are_not_narrowed() -> None:
    assert authorize_sender(settings(channels={"telegram": ["admin"]}), "http", "mallory") is None


def test_a_listed_channel_admits_only_its_roles() -> None:
    rules = settings(roles=ROLES, channels={"telegram": ["admin"], "http": ["user", "admin"]})
    assert authorize_sender(rules, "telegram", "42") is None
    assert authorize_sender(rules, "http", "alice") is None
    user_on_telegram = authorize_sender(
        settings(roles={"telegram:7": "user"}, channels={"telegram": ["admin"]}), "telegram", "7"
    )
    assert user_on_telegram is not None
    assert user_on_telegram.reason.endswith(
        "(telegram:7 has role 'user', which channels.telegram does not list)"
    )
    stranger = authorize_sender(rules, "telegram", "99")
    assert stranger is not None and "telegram:99 has no role" in stranger.reason


def test_a_malformed_sender_on_a_listed_channel_is_denied() -> None:
    refused = authorize_sender(
        settings(default_role="admin", channels={"telegram": ["admin"]}), "telegram", ""
    )
    assert (
        refused is not None and "'telegram:' is not a principal id: the user part is empty" in refused.reason
    )
