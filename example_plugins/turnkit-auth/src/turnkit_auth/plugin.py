"""``AuthPlugin``: the hook implementations, wired to the settings and the agent's storage.

The runtime makes one instance per agent from the entry point
``auth = "turnkit_auth:AuthPlugin"``, sets ``settings`` from ``[plugin.auth]``
and calls :meth:`AuthPlugin.configure` before any turn runs. The chat points
are ``optionalhook``: without the chat service the plugin still guards every
turn.
"""

from __future__ import annotations

from turnkit_hookspecs import ChannelMessage, Deny, ExecutionContext, Plugin, Principal, TurnInfo, hookimpl

from .directory import NAMESPACE, collection_for, record_seen
from .policy import authorize_sender, authorize_turn
from .settings import AuthSettings


class AuthPlugin(Plugin):
    """Allow-lists and roles for turns and chat senders, and a directory of who wrote."""

    settings_class = AuthSettings
    settings: AuthSettings

    def configure(self, context: ExecutionContext) -> None:
        """Keep the context; warn when the settings admit no person at all (a likely oversight)."""
        super().configure(context)
        settings = self.settings
        nobody = settings.default_role not in settings.allow_roles and not any(
            role in settings.allow_roles for role in settings.roles.values()
        )
        if settings.initiators.user == "check" and nobody:
            context.logger.warning(
                "turnkit-auth: no principal has a role in allow_roles (%s): every user turn will be denied",
                ", ".join(settings.allow_roles) or "none",
            )

    @hookimpl
    def turn_authorize(self, turn: TurnInfo) -> Deny | None:
        """Decide by the turn's initiator: people by their role, the rest by ``initiators``."""
        return authorize_turn(self.settings, turn)

    @hookimpl(optionalhook=True)
    def chat_authorize(self, inbound: ChannelMessage) -> Deny | None:
        """Apply ``channels``: on a listed channel only the listed roles may talk."""
        return authorize_sender(self.settings, inbound.channel, inbound.principal.id)

    @hookimpl(optionalhook=True)
    def chat_principal_role(self, principal: Principal) -> str | None:
        """The role from ``roles`` or ``default_role``; ``None`` lets the chat service's default apply."""
        return self.settings.role_of(f"{principal.channel}:{principal.id}")

    @hookimpl(optionalhook=True)
    async def chat_principal_seen(self, principal: Principal) -> None:
        """Count the sighting in the directory (unless ``record_principals`` is off)."""
        if self.settings.record_principals:
            storage = self.context.storage(NAMESPACE)
            await record_seen(storage, collection_for(self.context.agent_id), principal)
