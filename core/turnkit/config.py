"""The agent's TOML configuration, structured into attrs classes.

Structuring goes through the contract's strict converter, so a wrong type or
an unknown key is reported with its path (``$.plugins.required[0]``) and the
file it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs
from turnkit_hookspecs import PayloadError, structure

from .errors import ConfigError

#: Looked up in the working directory when neither ``--config`` nor ``TURNKIT_CONFIG`` names a file.
DEFAULT_CONFIG_FILE = "turnkit.toml"


@attrs.frozen
class PluginsConfig:
    """``[plugins]``: which plugins must load, and how points are ordered and timed.

    ``order`` maps a point to plugin names called first, in that order;
    ``effect_timeouts`` overrides ``effect_timeout`` (seconds) per point;
    ``effect_workers`` effect dispatches run at once (and as many threads run
    sync effect implementations); at most ``effect_queue`` wait, further
    ones are dropped and traced.
    """

    required: list[str] = attrs.field(factory=list)
    order: dict[str, list[str]] = attrs.field(factory=dict)
    effect_timeout: float = 5.0
    effect_timeouts: dict[str, float] = attrs.field(factory=dict)
    effect_workers: int = 4
    effect_queue: int = 10_000


@attrs.frozen
class Config:
    """The whole configuration file."""

    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)


def parse_config(data: Mapping[str, object], source: str = "<config>") -> Config:
    """Structure already-parsed TOML data; errors name ``source`` and each key path."""
    try:
        return structure(dict(data), Config)
    except PayloadError as exc:
        raise ConfigError(f"{source}: " + "; ".join(exc.problems)) from exc


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration from ``path``, ``$TURNKIT_CONFIG`` or ``./turnkit.toml``.

    A named file that does not exist is an error; the implicit default file
    may be absent, which gives the defaults.
    """
    env = os.environ if env is None else env
    named = path if path is not None else env.get("TURNKIT_CONFIG") or None
    file = Path(named) if named is not None else Path(DEFAULT_CONFIG_FILE)
    if not file.exists():
        if named is not None:
            raise ConfigError(f"{file}: no such configuration file")
        return Config()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return parse_config(data, str(file))
