"""The runtime's errors. Each message names what is wrong and where.

They all derive from :class:`TurnkitError` so an application can catch the
runtime's refusals apart from bugs.
"""

from __future__ import annotations

import turnkit_hookspecs as contract


class TurnkitError(Exception):
    """Base class of every error the runtime raises on purpose."""


class ConfigError(TurnkitError):
    """The configuration file is unreadable or does not match its schema."""


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

    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = missing
        lines = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
        super().__init__(f"required plugins not loaded — {lines}")


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
