"""``turnkit serve`` and ``turnkit chat``: running an agent until it is told to stop.

``serve`` starts the agent and runs every service's long-running part
(``Service.serve``: the chat service's channels, the task scheduler) until
SIGINT or SIGTERM. ``chat`` is ``serve`` with the chat service's channels set
to the terminal only, so it ends when the user quits the conversation.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the agent: its services' channels and schedulers, until Ctrl-C or SIGTERM.

    Which channels listen, and where, is configured per service, e.g.
    [service.chat] channels = ["http", "telegram"] and [service.chat.http] port.
    """
    _serve(ctx.obj, terminal=False)


@click.command()
@click.pass_context
def chat(ctx: click.Context) -> None:
    """Talk to the agent in this terminal (/new, /sessions, /fork, /quit; Ctrl-D quits).

    The agent's other services (the task scheduler …) run meanwhile; the
    chat service's network channels do not.
    """
    _serve(ctx.obj, terminal=True)


def _serve(config_path: str | None, *, terminal: bool) -> None:
    from .errors import TurnkitError

    try:
        asyncio.run(_run(config_path, terminal))
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        sys.exit(130)


async def _run(config_path: str | None, terminal: bool) -> None:
    from .agent import Agent
    from .config import load_config, with_service_option

    config = load_config(config_path)
    if terminal:
        config = with_service_option(config, "chat", "channels", ["terminal"])
    agent = Agent(config)
    async with agent:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, agent.request_stop)
        if not terminal:
            serving = ", ".join(agent.services) or "no services"
            click.echo(f"turnkit: agent {agent.id!r} serving ({serving}); Ctrl-C stops it", err=True)
        try:
            await agent.serve()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
