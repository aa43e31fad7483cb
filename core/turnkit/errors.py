"""The runtime's errors. Each message names what is wrong and where.

They all derive from :class:`TurnkitError` so an application can catch the
runtime's refusals apart from bugs.
"""

from __future__ import annotations

from collections.abc import Sequence

import turnkit_hookspecs as contract


class TurnkitError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ConfigError(TurnkitError):
    """The configuration file is unreadable or does not match its schema.

    The message is always one line: keys and values quoted from the file
    may hold newlines or terminal escapes, which are shown escaped.
    """

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else ascii(c)[1:-1] for c in message))


class PluginLoadError(TurnkitError):
    """A plugin could not be registered (import failure, bad hook, bad arguments)."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        self.reason = reason
        super().__init__(f"plugin {plugin!r}: {reason}")


class PluginConfigureError(TurnkitError):
    """A plugin's ``configure(context)`` raised; the agent does not start without it."""

    def __init__(self, plugin: str, distribution: str | None, error: BaseException) -> None:
        self.plugin = plugin
        self.distribution = distribution
        where = f" ({distribution})" if distribution else ""
        super().__init__(f"plugin {plugin!r}{where} failed to configure: {type(error).__name__}: {error}")


class RequiredPluginError(TurnkitError):
    """A plugin listed in ``plugins.required`` is not loaded; the agent must not start."""

    def __init__(
        self, missing: dict[str, str], loaded: Sequence[str] = (), source: str | None = None
    ) -> None:
        self.missing = missing
        lines = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
        known = f"loaded plugins: {', '.join(loaded)}" if loaded else "no plugin is loaded"
        where = f"{source}: " if source else ""
        super().__init__(f"{where}required plugins not loaded — {lines} ({known})")


class UnknownPointError(TurnkitError):
    """An extension point name is not declared by the contract or any service."""

    def __init__(self, point: str, suggestion: str | None) -> None:
        self.point = point
        self.suggestion = suggestion
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(f"unknown extension point {point!r}{hint}")


class DispatchError(TurnkitError):
    """A point could not be dispatched as asked (wrong kind, missing argument)."""


class PipelineError(TurnkitError):
    """A pipeline implementation raised or returned the wrong type; the step is aborted."""

    def __init__(self, point: str, plugin: str, problem: str) -> None:
        self.point = point
        self.plugin = plugin
        super().__init__(f"pipeline {point!r}: plugin {plugin!r} {problem}")


class ResolveError(TurnkitError):
    """A resolve implementation raised; the point fails with it."""

    def __init__(self, point: str, plugin: str, problem: str) -> None:
        self.point = point
        self.plugin = plugin
        super().__init__(f"resolve {point!r}: plugin {plugin!r} {problem}")


class PluginTimeout(TurnkitError):
    """An implementation ran past its point's time limit; the kind's rule decides what follows."""

    def __init__(self, plugin: str, point: str, seconds: float) -> None:
        self.plugin = plugin
        self.point = point
        self.seconds = seconds
        super().__init__(f"timed out after {seconds:g}s")


class PluginHung(TurnkitError):
    """A plugin has too many calls still stuck on abandoned threads to be given another one."""

    def __init__(self, plugin: str, hung: int) -> None:
        self.plugin = plugin
        self.hung = hung
        super().__init__(
            f"not called: {hung} earlier call(s) of plugin {plugin!r} are still hung ([plugins] hung_limit)"
        )


class NoResolutionError(TurnkitError):
    """No implementation of a resolve point gave an answer."""

    def __init__(self, point: str, tried: list[str]) -> None:
        self.point = point
        self.tried = tried
        who = ", ".join(tried) if tried else "no implementation is registered"
        super().__init__(f"resolve {point!r} got no answer (tried: {who})")


class StoreError(TurnkitError):
    """The session store refused an operation (unknown id, a newer schema, a broken database)."""


class IdempotencyKeyReused(StoreError, contract.IdempotencyKeyReused):
    """The store's refusal of an idempotency key that named a turn of another session
    (the contract's error, so that services can catch it)."""


class SessionError(TurnkitError):
    """A session action is not possible (unknown or closed session, not a child, a denied fork)."""


class UnknownActionError(TurnkitError):
    """``invoke`` named a service or action that does not exist."""


class UnknownAgentError(TurnkitError):
    """``send_to_agent`` named an agent that never used this store."""
