"""Finding services and plugins through entry points, in a deterministic order.

Entry points are sorted by name (then distribution) rather than taken in
``sys.path``/filesystem order, so two machines with the same distributions
call hooks in the same order. ``TURNKIT_LOAD_PLUGINS`` and
``TURNKIT_DISABLE_PLUGINS`` are applied before anything is imported, so a
plugin that is switched off can never break start-up.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping, Sequence

import attrs
import importlib_metadata

SERVICES_GROUP = "turnkit.services"
PLUGINS_GROUP = "turnkit.plugins"
#: Not an entry point group: what the runtime registers itself (the built-in defaults).
BUILTIN_GROUP = "turnkit.builtin"
LOAD_ENV = "TURNKIT_LOAD_PLUGINS"
DISABLE_ENV = "TURNKIT_DISABLE_PLUGINS"


def normalize(name: str) -> str:
    """PEP 503 normalisation, so ``Turnkit_Redact`` and ``turnkit-redact`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


@attrs.frozen
class Candidate:
    """An entry point found in an installed distribution."""

    name: str
    group: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: importlib_metadata.EntryPoint = attrs.field(eq=False, repr=False)

    @property
    def module(self) -> str:
        """The module the entry point imports."""
        return self.value.split(":", 1)[0].strip()

    def load(self) -> object:
        """Import the entry point's object."""
        return self.entry_point.load()


def find(group: str) -> list[Candidate]:
    """Every entry point of ``group`` in the environment, sorted by name and distribution.

    Read once per ``sys.path``: reading means parsing every installed
    distribution's metadata, and one command asks several times
    (``turnkit --help`` lists the services and the added commands, then
    describes each). What a process finds at its start is what it loads.
    """
    return list(_found(group, tuple(sys.path)))


@functools.lru_cache(maxsize=16)
def _found(group: str, path: tuple[str, ...]) -> tuple[Candidate, ...]:
    """``find`` for ``sys.path`` as ``path`` (the cache's key: where distributions are looked for)."""
    found = []
    for ep in importlib_metadata.entry_points(group=group):
        dist = ep.dist
        found.append(
            Candidate(
                name=ep.name,
                group=group,
                value=ep.value,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
                entry_point=ep,
            )
        )
    return tuple(sorted(found, key=lambda c: (c.name, c.distribution or "")))


@attrs.frozen
class Selection:
    """Which plugins the environment allows; ``allow is None`` means all."""

    allow: frozenset[str] | None
    disable: frozenset[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Selection:
        """Read the two variables: comma-separated plugin or distribution names."""

        def names(raw: str) -> frozenset[str]:
            return frozenset(normalize(n.strip()) for n in raw.split(",") if n.strip())

        allow_raw = env.get(LOAD_ENV)
        return cls(
            allow=None if allow_raw is None else names(allow_raw),
            disable=names(env.get(DISABLE_ENV, "")),
        )

    def why_skipped(self, candidate: Candidate) -> str | None:
        """The reason ``candidate`` must not be loaded, or ``None`` to load it."""
        keys = {normalize(candidate.name)}
        if candidate.distribution:
            keys.add(normalize(candidate.distribution))
        if keys & self.disable:
            return f"disabled by {DISABLE_ENV}"
        if self.allow is not None and not keys & self.allow:
            return f"not listed in {LOAD_ENV}"
        return None


def duplicates(candidates: Sequence[Candidate]) -> dict[int, Candidate]:
    """Map the index of each candidate whose name an earlier one already took."""
    seen: dict[str, Candidate] = {}
    clashes = {}
    for index, candidate in enumerate(candidates):
        if candidate.name in seen:
            clashes[index] = seen[candidate.name]
        else:
            seen[candidate.name] = candidate
    return clashes
