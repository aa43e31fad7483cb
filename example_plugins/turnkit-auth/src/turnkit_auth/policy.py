"""The decisions of the two guards, as plain functions of the settings and what the point hands in.

:func:`authorize_turn` decides every turn by who started it (``TurnInfo``,
recorded by the runtime, not by anything the message says about itself);
:func:`authorize_sender` adds the per-channel rules for chat senders. Both
deny whatever they cannot decide: an unknown kind of initiator, a malformed
principal id, a principal without a role.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from turnkit_hookspecs import Deny, TurnInfo

from .ids import MalformedPrincipalId, parse_principal_id
from .settings import AuthSettings, InitiatorRules

#: Initiators whose ``initiator_id`` is a bare name: their principal id is ``<initiator>:<id>``.
QUALIFIED_INITIATORS = frozenset({"extension", "agent"})
#: The keys of ``[plugin.auth.initiators]``.
INITIATOR_KEYS = frozenset(attrs.fields_dict(InitiatorRules))


def initiator_key(turn: TurnInfo) -> str:
    """The key of ``[plugin.auth.initiators]`` for ``turn``; ``local`` is a user turn naming nobody."""
    if turn.initiator == "user" and turn.initiator_id is None:
        return "local"
    return turn.initiator


def turn_principal(turn: TurnInfo) -> str | None:
    """The principal id a turn is checked as, or ``None`` when it names nobody.

    User and system turns carry one already (``telegram:42``, ``task:nightly``);
    the bare ids of extensions and agents are qualified (``agent:billing``).
    """
    if turn.initiator in QUALIFIED_INITIATORS and turn.initiator_id is not None:
        return f"{turn.initiator}:{turn.initiator_id}"
    return turn.initiator_id


def refuse(settings: AuthSettings, why: str) -> Deny:
    """A deny whose reason is ``deny_reason`` followed by what an operator needs to know."""
    return Deny(f"{settings.deny_reason} ({why})")


def admit(settings: AuthSettings, principal_id: str | None, allowed: Sequence[str], rule: str) -> Deny | None:
    """Allow ``principal_id`` when its role is in ``allowed`` (the setting named ``rule``), else deny."""
    if principal_id is None:
        return refuse(settings, "the turn names no principal")
    try:
        parse_principal_id(principal_id)
    except MalformedPrincipalId as exc:
        return refuse(settings, str(exc))
    role = settings.role_of(principal_id)
    if role is None:
        return refuse(settings, f"{principal_id} has no role and default_role is unset")
    if role not in allowed:
        return refuse(settings, f"{principal_id} has role {role!r}, which {rule} does not list")
    return None


def authorize_turn(settings: AuthSettings, turn: TurnInfo) -> Deny | None:
    """Decide whether ``turn`` may run, by the rule for its initiator (see :class:`InitiatorRules`)."""
    key = initiator_key(turn)
    if key not in INITIATOR_KEYS:
        return refuse(settings, f"unknown initiator {turn.initiator!r}")
    rule = getattr(settings.initiators, key)
    if rule == "allow":
        return None
    if rule == "deny":
        return refuse(settings, f'{key} turns are refused: initiators.{key} = "deny"')
    return admit(settings, turn_principal(turn), settings.allow_roles, "allow_roles")


def authorize_sender(settings: AuthSettings, channel: str, user: str) -> Deny | None:
    """Decide whether ``user`` may talk on chat ``channel`` (narrowed only if ``channels`` lists it)."""
    allowed = settings.channels.get(channel)
    if allowed is None:
        return None
    return admit(settings, f"{channel}:{user}", allowed, f"channels.{channel}")
