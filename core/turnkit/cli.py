"""The ``turnkit`` command line.

Only ``click`` is imported at module level: the runtime is imported inside
each command, so ``turnkit --help`` starts fast.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .cli_commands import AddedCommand
    from .manager import PluginManager


class TurnkitGroup(click.Group):
    """The root command: the runtime's commands, one group per installed service, and the
    commands other distributions add (:mod:`turnkit.cli_commands`).

    A service group (``turnkit task …``) is built only when asked for; a
    service named like a runtime command (``chat``) keeps its actions under
    ``turnkit invoke``. An added command whose name is taken is left out;
    the listing (``turnkit --help``) says so.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .cli_actions import service_names

        added, refused = self._added(ctx)
        for problem in refused.values():
            click.echo(f"warning: {problem}", err=True)
        return sorted({*super().list_commands(ctx), *service_names(), *added})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from .cli_actions import service_group

        group = service_group(cmd_name)
        if group is not None:
            return group
        added, refused = self._added(ctx)
        if cmd_name in refused:
            raise click.ClickException(refused[cmd_name])
        return added.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The command to run; an added one is imported now, when it is run or asked for its help."""
        from .cli_commands import AddedCommand

        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, AddedCommand):
            command = command.load()
        return name, command, rest

    def _added(self, ctx: click.Context) -> tuple[dict[str, AddedCommand], dict[str, str]]:
        """Other distributions' commands, with the names already taken and who took them."""
        from .cli_commands import added_commands
        from .discovery import SERVICES_GROUP, find

        taken = {name: "turnkit's own command" for name in super().list_commands(ctx)}
        for service in find(SERVICES_GROUP):
            taken.setdefault(service.name, f"the {service.name} service ({service.distribution})")
        return added_commands(taken)


@click.group(cls=TurnkitGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="TURNKIT_CONFIG",
    help="TOML configuration file (default: ./turnkit.toml if present).",
)
@click.version_option(package_name="turnkit")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """turnkit: a runtime for chat and task agents built from pip-installable plugins."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = config_path


def _manager(ctx: click.Context) -> PluginManager:
    """Load every service and plugin without refusing on missing required ones."""
    from .config import load_config
    from .defaults import install_defaults
    from .errors import TurnkitError
    from .manager import PluginManager

    try:
        config = load_config(ctx.obj)
        manager = PluginManager.load(config, strict=False)
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc
    install_defaults(manager, config.model)
    return manager


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed services and plugins: distribution, version, hooks, load errors.

    A plugin whose settings need a [plugin.NAME] table the configuration
    lacks is listed as "not configured", with the table to add: it stays
    inactive. Exits with status 1 when a plugin listed in plugins.required
    is not loaded.
    """
    from .console.plugins import listed_records
    from .errors import RequiredPluginError

    manager = _manager(ctx)
    records = listed_records(manager)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in records], indent=2))
    else:
        for record in records:
            kind = {"turnkit.services": "service", "turnkit.builtin": "built in"}.get(record.group, "plugin")
            dist = (
                f"{record.distribution} {record.version}" if record.distribution else "(registered in code)"
            )
            click.echo(f"{record.name}  [{kind}, {record.status}]  {dist}")
            if record.hooks:
                click.echo(f"    hooks: {', '.join(record.hooks)}")
            if record.error:
                click.echo(f"    {record.status}: {record.error}")
        if not records:
            click.echo("no services or plugins installed")
    try:
        manager.check_required()
    except RequiredPluginError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.argument("point", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def hooks(ctx: click.Context, point: str | None, as_json: bool) -> None:
    """Show extension points: kind, summary and implementations in exact call order."""
    from .errors import UnknownPointError

    manager = _manager(ctx)
    try:
        names = [point] if point else sorted(manager.points())
        described = [manager.describe_point(name) for name in names]
    except UnknownPointError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for entry in described:
        extra = f", threads {entry['value']}" if entry["value"] else ""
        click.echo(f"{entry['point']}  ({entry['kind']}{extra}; declared by {entry['declared_by']})")
        click.echo(f"    {entry['summary']}")
        for number, impl in enumerate(entry["implementations"], 1):
            flags = " ".join(f"[{flag}]" for flag in impl["flags"])
            dist = impl["distribution"] or "-"
            click.echo(f"    {number}. {impl['plugin']}  {dist}  {impl['function']}  {flags}".rstrip())
        if not entry["implementations"]:
            click.echo("    (no implementations)")
    for problem in [*manager.order_problems(), *manager.timeout_problems()]:
        click.echo(f"warning: {problem}", err=True)


def _add_commands() -> None:
    from .cli_actions import invoke
    from .cli_config import config
    from .cli_console import console
    from .cli_init import init
    from .cli_plugin import plugin
    from .cli_serve import chat, serve
    from .cli_sessions import send, sessions
    from .cli_store import store

    for command in (init, send, sessions, store, serve, chat, console, invoke, config, plugin):
        main.add_command(command)


_add_commands()
