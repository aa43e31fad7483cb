"""``[plugin.auth]``: who has which role, which roles may talk, and what other initiators may do.

The runtime structures the agent's TOML table into :class:`AuthSettings`
before the agent starts: an unknown key or a value of the wrong type is an
error naming its key path, and the validators below refuse values that would
make the guards guess (a principal id without a channel, a role no rule can
ever admit). A misconfigured guard must stop the agent, not let it run open.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import attrs

from .ids import MalformedPrincipalId, is_name, parse_principal_id

#: What happens to the turns of one kind of initiator (``[plugin.auth.initiators]``).
Rule: TypeAlias = Literal["check", "allow", "deny"]

DEFAULT_ALLOW_ROLES = ("admin", "user")
DEFAULT_DENY_REASON = "not allowed to talk to this agent"


def _role_name(key: str, value: str) -> None:
    if not is_name(value):
        raise ValueError(
            f"{key}: {value!r} is not a role name (letters, digits, '_', '.' and '-', "
            "starting with a letter or digit)"
        )


def _check_roles(instance: Any, attribute: attrs.Attribute[Any], roles: dict[str, str]) -> None:
    for principal_id, role in roles.items():
        try:
            parse_principal_id(principal_id)
        except MalformedPrincipalId as exc:
            raise ValueError(f"roles: {exc}") from None
        _role_name(f"roles[{principal_id!r}]", role)


def _check_default_role(instance: Any, attribute: attrs.Attribute[Any], role: str | None) -> None:
    if role is not None:
        _role_name("default_role", role)


def _check_allow_roles(instance: Any, attribute: attrs.Attribute[Any], roles: list[str]) -> None:
    for index, role in enumerate(roles):
        _role_name(f"allow_roles[{index}]", role)


def _check_deny_reason(instance: Any, attribute: attrs.Attribute[Any], reason: str) -> None:
    if not reason.strip():
        raise ValueError("deny_reason: must not be empty (it is stored with every denied turn)")


def _check_local(instance: Any, attribute: attrs.Attribute[Any], rule: Rule) -> None:
    if rule == "check":
        raise ValueError(
            'local: "check" is impossible, a local turn names nobody to check (use "allow" or "deny")'
        )


@attrs.frozen
class InitiatorRules:
    """``[plugin.auth.initiators]``: the rule for each kind of turn, by who started it.

    ``"check"`` looks the turn's principal up in ``roles`` and admits it when
    its role is in ``allow_roles``; ``"allow"`` and ``"deny"`` decide without
    looking. The kinds:

    * ``user`` -- a person; chat turns carry ``<channel>:<user>``;
    * ``local`` -- a user turn that names nobody: ``turnkit send``, or code
      calling ``agent.send`` without ``initiator_id``; it comes from whoever
      runs the agent's own process, so it cannot be checked;
    * ``system`` -- the agent's own work, e.g. a task run (``task:<name>``);
    * ``extension`` -- a child session a plugin forked (``extension:<plugin>``);
    * ``agent`` -- a message from another agent's inbox (``agent:<agent id>``).

    Only people are checked by default: the agent's own tasks, its plugins'
    forks, its peers and its operator are not locked out by installing this
    plugin.
    """

    user: Rule = "check"
    local: Rule = attrs.field(default="allow", validator=_check_local)
    system: Rule = "allow"
    extension: Rule = "allow"
    agent: Rule = "allow"


@attrs.frozen
class AuthSettings:
    """``[plugin.auth]``; see the README for a worked example.

    ``roles`` maps principal ids to roles; ``default_role`` is the role of a
    principal not listed there (unset: such a principal has no role and
    every check denies it). ``allow_roles`` are the roles that may start a
    turn; ``channels`` narrows them per chat channel
    (``telegram = ["admin"]``). ``deny_reason`` opens the reason stored with
    every turn this plugin denies. ``record_principals`` keeps a directory of
    everyone who wrote to the agent through the chat service.
    """

    roles: dict[str, str] = attrs.field(factory=dict, validator=_check_roles)
    default_role: str | None = attrs.field(default=None, validator=_check_default_role)
    allow_roles: list[str] = attrs.field(
        factory=lambda: list(DEFAULT_ALLOW_ROLES), validator=_check_allow_roles
    )
    channels: dict[str, list[str]] = attrs.field(factory=dict)
    initiators: InitiatorRules = attrs.field(factory=InitiatorRules)
    deny_reason: str = attrs.field(default=DEFAULT_DENY_REASON, validator=_check_deny_reason)
    record_principals: bool = True

    def __attrs_post_init__(self) -> None:
        """Check ``channels`` against ``allow_roles``: a role listed only there could never talk."""
        for channel, roles in self.channels.items():
            if not is_name(channel):
                raise ValueError(
                    f"channels: {channel!r} is not a channel name (letters, digits, '_', '.' and '-')"
                )
            for role in roles:
                _role_name(f"channels.{channel}", role)
                if role not in self.allow_roles:
                    raise ValueError(
                        f"channels.{channel}: role {role!r} is not in allow_roles, so it could never "
                        f"start a turn there (allow_roles: {', '.join(self.allow_roles) or 'none'})"
                    )

    def role_of(self, principal_id: str) -> str | None:
        """The role ``principal_id`` has here: its own, else ``default_role`` (may be ``None``)."""
        return self.roles.get(principal_id, self.default_role)
