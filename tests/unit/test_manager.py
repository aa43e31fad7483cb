"""Registration and validation rules of the plugin manager (in-process plugins)."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from turnkit import (
    Dispatcher,
    PluginLoadError,
    PluginManager,
    PluginsConfig,
    RequiredPluginError,
    UnknownPointError,
)
from turnkit_hookspecs import Deny, Kind, Message, Service, guard, hookimpl, hookspec, pipeline


class Typo:
    @hookimpl
    def turn_inbund(self, message: Message) -> None:
        return None


class BadArgument:
    @hookimpl
    def turn_inbound(self, msg: Message) -> None:
        return None


class OldStyleWrapper:
    @hookimpl(hookwrapper=True)
    def turn_inbound(self) -> Generator[None, None, None]:
        yield


class ShellSpecs:
    """The points a shell service would declare."""

    @guard
    def shell_authorize(self, argv: list[str]) -> Deny | None:
        """Decide whether ``argv`` may run.

        Example::

            @hookimpl
            def shell_authorize(argv):
                return None if argv[0] == "ls" else Deny("only ls")
        """

    @pipeline("argv")
    def shell_argv(self, argv: list[str]) -> list[str] | None:
        """Rewrite the command line.

        Example::

            @hookimpl
            def shell_argv(argv):
                return ["nice", *argv]
        """


class ShellService(Service):
    name = "shell"
    hookspecs = (ShellSpecs,)


class OnlyLs:
    @hookimpl
    def shell_authorize(self, argv: list[str]) -> Deny | None:
        return None if argv[0] == "ls" else Deny("only ls")


class MaybeShell:
    @hookimpl(optionalhook=True)
    def shell_authorize(self, argv: list[str]) -> None:
        return None

    @hookimpl
    def turn_authorize(self) -> None:
        return None


def test_unknown_hook_is_refused_with_the_closest_name() -> None:
    manager = PluginManager()
    with pytest.raises(PluginLoadError) as caught:
        manager.register(Typo(), "typo")
    assert caught.value.plugin == "typo"
    assert "unknown hook 'turn_inbund'; did you mean 'turn_inbound'?" in str(caught.value)
    assert "typo" not in manager.records
    assert manager.implementations("turn_inbound") == []


def test_unknown_argument_is_refused() -> None:
    manager = PluginManager()
    with pytest.raises(PluginLoadError, match="'bad'.*msg"):
        manager.register(BadArgument(), "bad")


def test_old_style_hookwrappers_are_refused() -> None:
    with pytest.raises(PluginLoadError, match="use wrapper=True"):
        PluginManager().register(OldStyleWrapper(), "old")


def test_a_name_is_registered_once() -> None:
    manager = PluginManager()
    manager.register(MaybeShell(), "p")
    with pytest.raises(PluginLoadError, match="already registered"):
        manager.register(MaybeShell(), "p")


async def test_a_service_adds_its_own_points() -> None:
    manager = PluginManager()
    manager.add_service(ShellService())
    assert manager.point("shell_authorize").kind is Kind.GUARD
    assert manager.point("shell_argv").value == "argv"
    assert manager.owner("shell_authorize") == "service 'shell'"
    manager.register(OnlyLs(), "only-ls")
    dispatch = Dispatcher(manager)
    deny = await dispatch.guard("shell_authorize", argv=["rm", "-rf", "/"])
    assert deny == Deny("only ls", plugin="only-ls")
    assert await dispatch.guard("shell_authorize", argv=["ls"]) is None


def test_a_service_point_needs_a_kind() -> None:
    class Untyped:
        @hookspec
        def shell_thing(self) -> None:
            """No kind."""

    class Bad(Service):
        name = "bad"
        hookspecs = (Untyped,)

    with pytest.raises(PluginLoadError, match="'shell_thing' is declared without a kind decorator"):
        PluginManager().add_service(Bad())


def test_a_service_cannot_redeclare_a_core_point() -> None:
    class Clash:
        @guard
        def turn_authorize(self) -> None:
            """Again.

            Example:: none
            """

    class Bad(Service):
        name = "bad"
        hookspecs = (Clash,)

    with pytest.raises(PluginLoadError, match="'turn_authorize' is already declared by turnkit"):
        PluginManager().add_service(Bad())


def test_optional_hooks_of_absent_services_are_allowed() -> None:
    manager = PluginManager()
    manager.register(MaybeShell(), "maybe")
    assert manager.records["maybe"].hooks == ["shell_authorize", "turn_authorize"]


def test_unknown_point_names_get_a_suggestion() -> None:
    with pytest.raises(UnknownPointError, match="'turn_reploy'.*did you mean 'turn_reply'"):
        PluginManager().point("turn_reploy")


def test_required_plugins_must_be_loaded() -> None:
    manager = PluginManager(PluginsConfig(required=["auth", "maybe"]))
    manager.register(MaybeShell(), "maybe")
    with pytest.raises(RequiredPluginError) as caught:
        manager.check_required()
    assert caught.value.missing == {"auth": "not installed"}
