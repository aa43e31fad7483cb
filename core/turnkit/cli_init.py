"""``turnkit init``: a commented ``turnkit.toml`` to start an agent from.

What a new user edits first is in it, each with a word on what it does:
the instructions, the model, the store, the channels ``turnkit serve``
runs (the HTTP one on loopback, its token shown but left off so that the
curl lines of the README work as they are) and the shell's allow-list.
Every value written is the default or a safe choice, and a test checks
that ``turnkit config check`` accepts the file as written.
"""

from __future__ import annotations

import click

#: The file ``turnkit init`` writes.
TEMPLATE = '''\
# An agent's configuration. `turnkit config check` validates it and prints every
# setting in effect; relative paths are taken from this file's folder.

[agent]
id = "default"    # its address; agents sharing a store need ids of their own
# What the model is told before every conversation (its system prompt). Keep them
# in a file of their own with instructions_file = "instructions.md" instead.
instructions = """
You are a helpful assistant. Answer briefly and say so when you do not know.
"""
# log_level = "INFO"    # a line per turn; WARNING (the default) logs only trouble

[model]
# With no model plugin installed, the built-in echo model answers (offline, for
# trying things out). Install one (pip install turnkit-openai), give it its table
# and name the model it should use:
# name = "gpt-4o-mini"
context_window = 8192    # tokens the model reads at most

# [plugin.openai]
# model = "gpt-4o-mini"
# base_url = "https://api.openai.com/v1"    # or a local server: llama.cpp, vLLM, Ollama
# api_key_env = "OPENAI_API_KEY"            # the key stays in the environment

[store]
url = "turnkit.db"    # a SQLite file; or postgresql://user@host/db (pip install "turnkit[postgresql]")

[service.chat]
# What `turnkit serve` runs: "http" (an HTTP API, and an OpenAI-compatible /v1)
# and "telegram" (set TELEGRAM_BOT_TOKEN). `turnkit chat` talks in this terminal.
channels = ["http"]

[service.chat.http]
host = "127.0.0.1"    # loopback only; "0.0.0.0" for every interface (set a token first)
port = 8321
# token_env = "TURNKIT_HTTP_TOKEN"    # then every request needs "Authorization: Bearer <token>"

[service.shell]
allow = []    # programs the model may run, e.g. ["ls", "git"]: none until you list them
'''


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.pass_context
def init(ctx: click.Context, path: str | None, force: bool) -> None:
    """Write a commented turnkit.toml to start from: instructions, model, channels.

    PATH is where (default: the --config file, else ./turnkit.toml); an
    existing file is left alone unless --force is given.
    """
    from pathlib import Path

    from .config import DEFAULT_CONFIG_FILE

    target = Path(path or ctx.find_root().obj or DEFAULT_CONFIG_FILE)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists already: edit it, or pass --force to replace it")
    try:
        target.write_text(TEMPLATE, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{target}: cannot write it: {exc.strerror or exc}") from exc
    click.echo(f"wrote {target}; `turnkit config check` validates it, `turnkit send hello` tries it")
