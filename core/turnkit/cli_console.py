"""``turnkit console``: the console of a store, read-only, for an agent that is not serving.

It opens the store and serves the console's page and API with uvicorn: no
agent starts, no lease is taken, no turn runs, and the API has no route
that writes (the message box is hidden, and its POST is a 409 saying why),
so it is safe beside running agents and on a copy of any store file. The
plugins view shows what this environment installs, as ``turnkit plugins``
and ``turnkit hooks`` do.
"""

from __future__ import annotations

import os
import sys

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where to listen (loopback by default).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8322, show_default=True, help="0 picks a free port."
)
@click.option(
    "--store",
    "url",
    help="The store to read (a SQLite file, sqlite:///path or postgresql://…); default: the configuration's.",
)
@click.option(
    "--token-env",
    help="Require 'Authorization: Bearer <token>' on the API, the token read from this environment"
    " variable (required to listen beyond loopback).",
)
@click.pass_context
def console(ctx: click.Context, host: str, port: int, url: str | None, token_env: str | None) -> None:
    """Browse the store's sessions, turns, audit trail and plugins in a web page, read-only.

    Open the address it prints (http://127.0.0.1:8322/ by default). To also
    send messages, use the console of a running agent instead: `turnkit
    serve` serves it at /console/ on its HTTP channel.
    """
    token = None
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise click.UsageError(f"--token-env: the environment variable {token_env} is not set")
    elif not _loopback(host):
        raise click.UsageError(f"--host {host} is not loopback: anyone could read the store; set --token-env")
    from .cli_run import run

    run(_serve, ctx.find_root().obj, host, port, url, token)


async def _serve(config_path: str | None, host: str, port: int, url: str | None, token: str | None) -> None:
    from .cli_store import must_exist
    from .config import load_config
    from .console.hosts import read_only_console
    from .console.server import listen, serve
    from .defaults import install_defaults
    from .manager import PluginManager
    from .store import make_store

    config = load_config(config_path)
    manager = PluginManager.load(config, strict=False)
    install_defaults(manager, config.model)
    store = make_store(config.store, config.base_dir, url)
    must_exist(store)
    await store.open()
    try:
        try:
            listener = listen(host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound = listener.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        address = f"http://{shown}:{bound[1]}/"

        def ready() -> None:
            print(f"turnkit: console of {store.url} on {address}", file=sys.stderr, flush=True)

        await serve(listener, lambda stopping: read_only_console(store, manager, token, stopping), ready)
    finally:
        await store.close()


def _loopback(host: str) -> bool:
    import ipaddress  # here: every command's start imports this module

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
