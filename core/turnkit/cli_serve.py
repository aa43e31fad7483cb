"""``turnkit serve`` and ``turnkit chat``: running an agent until it is told to stop.

``serve`` starts the agent and runs every service's long-running part
(``Service.serve``: the chat service's channels, the task scheduler) until
SIGINT or SIGTERM. ``chat`` is ``serve`` with the chat service's channels set
to the terminal only, so it ends when the user quits the conversation.

A server that runs but serves nothing is worse than one that does not
start: nobody notices until a message goes unanswered. So ``serve``
requires every service it starts (one that fails to start, such as chat
with an unknown channel, stops it, naming why), and refuses to run when
nothing would serve: no channel, no scheduled task and no other service
with a long-running part.

A command of another distribution that runs the agent on a variant of the
configuration (turnkit-mcp's ``turnkit mcp``: the ``mcp`` channel alone,
over stdin and stdout) calls :func:`serve_agent`, which serves as
``serve`` does.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import click

if TYPE_CHECKING:
    from .agent import Agent
    from .config import Config

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
#: ``[agent] log_level``'s values, for ``--log-level``.
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)


@click.command()
@click.option(
    "--host", help="The HTTP channel's address ([service.chat.http] host); 0.0.0.0 for every interface."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="The HTTP channel's port ([service.chat.http] port); 0 picks a free one.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="How much the agent logs ([agent] log_level); INFO adds a line per turn.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, log_level: str | None) -> None:
    """Run the agent: its services' channels and schedulers, until Ctrl-C or SIGTERM.

    Which channels listen, and where, is configured per service, e.g.
    [service.chat] channels = ["http", "telegram"] and [service.chat.http]
    port. Every service must start (list one in [services] disabled to serve
    without it), and something must serve: a channel or a scheduled task.
    """
    from .config import load_config
    from .errors import TurnkitError

    try:
        config = _overridden(load_config(ctx.obj), host, port, log_level)
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc
    _serve(config, terminal=False, http_options=host is not None or port is not None)


@click.command()
@click.pass_context
def chat(ctx: click.Context) -> None:
    """Talk to the agent in this terminal (/new, /sessions, /fork, /quit; Ctrl-D quits).

    The agent's other services (the task scheduler …) run meanwhile; the
    chat service's network channels do not.
    """
    from .config import load_config, with_service_option
    from .errors import TurnkitError

    try:
        config = with_service_option(load_config(ctx.obj), "chat", "channels", ["terminal"])
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc
    _serve(config, terminal=True, http_options=False)


def serve_agent(config_path: str | None, service: Mapping[str, Mapping[str, Any]]) -> None:
    """Run the agent of ``config_path`` as ``turnkit serve`` does, with ``service`` merged into its settings.

    ``config_path`` is what turnkit's commands receive as ``ctx.obj`` (the
    ``--config`` option). ``service`` maps a service's name to settings merged
    into its ``[service.NAME]`` table: a table into the table of that key, any
    other value in place of the key's. A wrong configuration exits with its
    message, as ``serve``'s does.
    """
    from .config import load_config, with_service_option
    from .errors import TurnkitError

    try:
        config = load_config(config_path)
        for name, settings in service.items():
            table = _merged(config.service.get(name, {}), settings)
            for key, value in table.items():
                config = with_service_option(config, name, key, value)
        config = _overridden(config, None, None, None)
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc
    _serve(config, terminal=False, http_options=False)


def _merged(table: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``table`` with ``changes``: tables merged key by key, other values replaced."""
    merged = dict(table)
    for key, value in changes.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merged(current, value)
        else:
            merged[key] = value
    return merged


def _overridden(config: Config, host: str | None, port: int | None, log_level: str | None) -> Config:
    """``config`` with the command line's options, and every service it starts required."""
    import attrs

    from .cli_actions import service_names
    from .config import with_service_option

    if host is not None or port is not None:
        http = dict(config.service.get("chat", {}).get("http", {}))
        http.update({key: value for key, value in (("host", host), ("port", port)) if value is not None})
        config = with_service_option(config, "chat", "http", http)
    agent = config.agent
    if log_level is not None:  # one of LOG_LEVELS: the option's choices let no other through
        agent = attrs.evolve(agent, log_level=cast(LogLevel, log_level.upper()))
    services = config.services
    started = [name for name in service_names() if name not in services.disabled]
    required = list(dict.fromkeys([*services.required, *started]))
    return attrs.evolve(config, agent=agent, services=attrs.evolve(services, required=required))


def _serve(config: Config, *, terminal: bool, http_options: bool) -> None:
    from .cli_run import run

    # The runtime's own modules log as much as the agent does.
    logging.getLogger("turnkit").setLevel(config.agent.log_level)
    try:
        run(_run, config, terminal, http_options)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        sys.exit(130)


async def _run(config: Config, terminal: bool, http_options: bool) -> None:
    import asyncio  # here, not at the top: ``turnkit --help`` imports this module

    from .agent import Agent
    from .models import echo_notice

    agent = Agent(config)
    async with agent:
        if terminal and (notice := echo_notice(agent.config, agent.model)):
            click.echo(notice, err=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, agent.request_stop)
        try:
            if not terminal:
                await _announce(agent, config, http_options)
            await agent.serve()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


async def _announce(agent: Agent, config: Config, http_options: bool) -> None:
    """Say what the agent serves; refuse when that is nothing, or when the options set nothing."""
    from .errors import TurnkitError

    serving = await _serving(agent)
    if not serving:
        raise TurnkitError(
            f"{config.source}: nothing to serve: no channel in [service.chat] channels and no"
            ' scheduled task; add a channel (channels = ["http"]) or a task with cron or at'
            " ([[service.task.tasks]]), or talk to the agent in this terminal with `turnkit chat`"
        )
    if http_options and "http" not in serving.get("chat", []):
        raise TurnkitError(
            f"{config.source}: --host and --port set the http channel, which [service.chat]"
            " channels does not list"
        )
    described = "; ".join(f"{name}: {', '.join(what)}" if what else name for name, what in serving.items())
    click.echo(f"turnkit: agent {agent.id!r} serving ({described}); Ctrl-C stops it", err=True)


async def _serving(agent: Agent) -> dict[str, list[str]]:
    """What each started service with a long-running part would serve (nothing: left out).

    The chat service serves its channels and the task scheduler the tasks
    that have a next run; of another service, nothing more is known than
    that it has a ``serve``.
    """
    from turnkit_hookspecs import Service, unstructure

    serving: dict[str, list[str]] = {}
    for name, service in agent.services.items():
        if type(service).serve is Service.serve:
            continue
        if name == "chat":
            channels = list(getattr(service.settings, "channels", []))
            if channels:
                serving[name] = channels
        elif name == "task":
            listed = await agent.invoke("task.list")
            tasks = unstructure(listed.value) if listed.ok else []
            scheduled = sum(1 for task in tasks if isinstance(task, dict) and task.get("next_run"))
            if scheduled:
                serving[name] = [f"{scheduled} scheduled task" + ("s" if scheduled > 1 else "")]
        else:
            serving[name] = []
    return serving
