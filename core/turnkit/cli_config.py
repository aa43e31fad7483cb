"""``turnkit config check``: would this configuration start, and what does it amount to?

The check starts the agent exactly as ``turnkit send`` would (every
service and plugin loaded, their tables structured into their settings,
plugins configured, services started, the model checked) but on a
throwaway in-memory store, so that every start-time check runs, with no
copy of it to drift from the real one, while nothing is written and the
configured store is not opened (its URL is only read). What the start
logs (a plugin installed but not configured …) is printed as warnings, a
service that fails to start is a problem like any other, and the first
problem ends the check with exit 1.

The effective configuration printed is every table with its defaults
filled in, each service's and plugin's settings included, and the model
the agent settled on. Settings holding a credential (``token``,
``api_key`` … see :mod:`turnkit.secrets`) and the values of the variables
that ``*_env`` settings name are shown as ``[secret]``; the store's URL is
shown as the store names itself (a SQLite file's whole path, a PostgreSQL
URL without its password).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .agent import Agent
    from .config import Config


@click.group()
def config() -> None:
    """Check the configuration and show every setting in effect."""


@config.command()
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON (default: TOML).")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check the configuration as the agent's start would, and print it with its defaults.

    Every installed service's and plugin's settings are checked, the
    plugins configured and the services started, on a throwaway in-memory
    store: nothing is written, and the configured store is not opened.
    Secrets are printed as [secret]. Exits 1 at the first problem, naming
    it and where it is.
    """
    from .cli_run import run

    source, effective, warnings = run(_check, ctx.find_root().obj)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(json.dumps(effective, indent=2, ensure_ascii=False) if as_json else toml_text(effective))
    click.echo(f"{source}: ok", err=True)


async def _check(config_path: str | None) -> tuple[str, dict[str, Any], list[str]]:
    import attrs

    from .agent import Agent
    from .config import load_config
    from .errors import ConfigError, StoreError
    from .store import make_store
    from .store.sqlite import MEMORY

    config = load_config(config_path)
    try:
        store_url = make_store(config.store, config.base_dir).url
    except (StoreError, ImportError) as exc:  # an unknown scheme; PostgreSQL without its extra
        raise ConfigError(f"{config.source}: {exc} @ $.store.url") from exc
    throwaway = attrs.evolve(config, store=attrs.evolve(config.store, url=MEMORY, thread=False))
    with _logged() as warnings:
        agent = Agent(throwaway, resume=False)
        async with agent:
            if agent.service_errors:
                name, error = next(iter(agent.service_errors.items()))
                raise ConfigError(f"{config.source}: service {name!r} failed to start: {error}")
            effective = _effective(agent, store_url)
    return config.source, _masked(effective, agent), warnings


@contextmanager
def _logged() -> Iterator[list[str]]:
    """The runtime's warnings while the block runs, collected instead of printed."""
    logger = logging.getLogger("turnkit")
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    propagated, logger.propagate = logger.propagate, False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagated


def _effective(agent: Agent, store_url: str) -> dict[str, Any]:
    """Every table of the agent's configuration with its defaults, the tables of its parts included."""
    from turnkit_hookspecs import unstructure

    config: Config = agent.config
    data: dict[str, Any] = unstructure(config)
    for computed in ("base_dir", "source"):
        data.pop(computed, None)
    data["store"]["url"] = store_url
    data["plugin"] = _settings(agent.manager.plugins())
    data["service"] = _settings(agent.manager.services())
    return data


def _settings(parts: Mapping[str, Any]) -> dict[str, Any]:
    from turnkit_hookspecs import unstructure

    return {
        name: unstructure(part.settings)
        for name, part in sorted(parts.items())
        if getattr(part, "settings_class", None) is not None and getattr(part, "settings", None) is not None
    }


def _masked(data: Any, agent: Agent) -> Any:
    """``data`` with every credential setting, and every secret value anywhere, shown as ``[secret]``."""
    from .secrets import MARK, is_credential

    def mask(value: Any, key: str | None) -> Any:
        if isinstance(value, Mapping):
            return {k: mask(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(item, None) for item in value]
        if isinstance(value, str) and value and key is not None and is_credential(key):
            return MARK
        return value

    return agent.secrets.scrub_data(mask(data, None))


def toml_text(data: Mapping[str, Any]) -> str:
    """``data`` as TOML; ``None`` has no TOML spelling, so unset keys are left out (they read the same)."""
    import tomli_w

    return tomli_w.dumps(_set_only(data))


def _set_only(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _set_only(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_set_only(item) for item in value if item is not None]
    return value
