"""What a plugin may declare beyond its hookimpls: settings and the execution context.

A plugin is any object with ``@hookimpl`` functions — a module is enough. A
plugin that needs configuration or the agent's capabilities (its storage,
its environment, ``invoke``) derives from :class:`Plugin` instead::

    @attrs.frozen
    class AuthSettings:
        allow: list[str] = attrs.field(factory=list)

    class AuthPlugin(Plugin):
        settings_class = AuthSettings

        @hookimpl
        def chat_authorize(self, principal):
            if principal.id not in self.settings.allow:
                return Deny("not on the allow-list")
            return None

and names the class in its entry point (``auth = "turnkit_auth:AuthPlugin"``):
the runtime makes one instance per agent, so two agents in one process never
share a plugin's state.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from .context import ExecutionContext


class Configured:
    """What services and plugins share: settings from the agent's TOML file and the context.

    ``settings_class`` (an attrs class) describes the object's own table of
    the configuration — ``[service.<name>]`` or ``[plugin.<name>]``. The
    runtime structures that table into it before the object is started or
    configured, reporting a wrong key with its file and key path, and sets
    ``settings``. Without a ``settings_class`` the object takes no table, and
    one given for it is an error (a misspelt key must not pass silently).
    """

    settings_class: ClassVar[type | None] = None
    settings: Any = None
    #: Set when the agent hands the context over; read through :attr:`context`.
    _context: ExecutionContext | None = None

    @property
    def context(self) -> ExecutionContext:
        """The agent's execution context, once the agent has handed it over."""
        if self._context is None:
            raise RuntimeError(f"{type(self).__name__} has no execution context: its agent has not started")
        return self._context

    @context.setter
    def context(self, context: ExecutionContext) -> None:
        self._context = context


class Plugin(Configured):
    """Optional base class of a plugin with settings, resources, or a need for the execution context.

    :meth:`configure` is called once when the agent starts: after the store
    is open and the settings are set, before any service starts or any turn
    runs. A plugin that raises there stops the agent from starting, naming
    the plugin — a guard that could not read its allow-list must not let
    everyone in. :meth:`close` is called once when the agent stops, so that
    what a plugin keeps across turns (a connection pool, worker processes)
    lives as long as its agent and no longer. A plugin has no other
    lifecycle: it runs nothing of its own between the two (that is a
    service's job).

    A plugin whose ``settings_class`` has keys without a default is not
    configured while the agent's file has no ``[plugin.NAME]`` table: it
    stays inactive (``turnkit plugins`` says which table to add), and
    neither method is called.
    """

    def configure(self, context: ExecutionContext) -> Awaitable[None] | None:
        """Keep ``context`` as ``self.context``; override (``def`` or ``async def``) to do more."""
        self.context = context
        return None

    async def close(self) -> None:
        """Release what :meth:`configure` or the turns acquired; by default, nothing.

        Called when the agent stops, after its last turn and effect, for
        every plugin whose ``configure`` succeeded, in reverse order; also
        when a later part of the start failed. It has ``[plugins]
        close_timeout`` seconds (10 by default); an error or running out is
        logged and the agent goes on stopping.
        """
