"""``turnkit store …``: what the store holds, bringing its schema up to date, copying it elsewhere.

Like the ``sessions`` commands these open the store directly: no plugin is
loaded, no lease is taken and nothing is recovered, so they work with broken
plugins installed and never touch a running agent's turns. ``info`` changes
nothing (it does not even migrate); ``copy`` reads its source without
changing it and refuses while a process holds a lease on it.

A URL given on the command line (``--url``, ``--from``, ``--to``) that is a
relative file path is taken from the working directory, as a shell user
expects; the configuration's ``[store] url`` stays relative to the
configuration file, as everywhere else.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from .config import Config
    from .store import Store
    from .store.copy import Tally
    from .store.postgres import PostgresStore
    from .store.records import OwnerRecord
    from .store.sqlite import SQLiteStore

T = TypeVar("T")

#: Expired leases ``store info`` lists besides the live ones (``--json`` lists them all).
EXPIRED_SHOWN = 3

_URL_HELP = "The store's URL or file path (default: the configuration's [store] url)."


def _run(ctx: click.Context, work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``work`` with the configuration path first; the runtime's errors become one-line CLI errors."""
    from .cli_run import run

    return run(work, ctx.find_root().obj, *args)


@click.group()
def store() -> None:
    """Inspect the store, migrate its schema, copy it to another database (SQLite or PostgreSQL)."""


# ---------------------------------------------------------------------- info


@store.command()
@click.option("--url", help=_URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Engine, schema version, rows per table, size on disk, agents and process leases.

    Changes nothing: an out-of-date schema is reported, not migrated.
    """
    found = _run(ctx, _info, url)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    schema = f"{found['schema_version']} (this turnkit: {found['code_schema_version']})"
    if found["schema_version"] < found["code_schema_version"]:
        schema += "; `turnkit store migrate` brings it up to date"
    size = found["size"]
    parts = ", ".join(f"{part} {_bytes(size[part])}" for part in ("file", "wal") if part in size)
    click.echo(f"engine   {found['engine']}")
    click.echo(f"url      {found['url']}")
    click.echo(f"schema   {schema}")
    click.echo(f"size     {_bytes(size['total'])}" + (f" ({parts})" if parts else ""))
    click.echo(f"agents   {', '.join(found['agents']) or '(none)'}")
    click.echo("tables")
    for name, count in found["tables"].items():
        click.echo(f"  {name:<14} {count:>10}")
    leases = found["leases"]
    live = [lease for lease in leases if lease["live"]]
    expired = [lease for lease in leases if not lease["live"]]
    click.echo(f"leases   {len(live)} live, {len(expired)} expired")
    for lease in live + expired[-EXPIRED_SHOWN:]:
        click.echo(f"  {_lease_line(lease)}")
    if len(expired) > EXPIRED_SHOWN:
        click.echo(f"  … and {len(expired) - EXPIRED_SHOWN} older expired leases (--json lists them)")


async def _info(config_path: str | None, url: str | None) -> dict[str, Any]:
    from .store import copy
    from .store.migrations import SCHEMA_VERSION

    config = _config(config_path)
    store = _make(config, url)
    must_exist(store)
    await store.open(upto=0)  # no migration: info changes nothing
    try:
        version = await store.schema_version()
        present = await store._read(copy.tables)
        names = [name for name in (*(t.name for t in copy.TABLES), "owners") if name in present]
        counts = await store._read(copy.row_counts, names)
        size = await copy.database_size(store)
        agents = await store.agents() if "agents" in present else []
        owners = await store.owners() if "owners" in present else []
    finally:
        await store.close()
    return {
        "engine": store.dialect.name,
        "url": store.url,
        "schema_version": version,
        "code_schema_version": SCHEMA_VERSION,
        "size": size,
        "agents": agents,
        "tables": counts,
        "leases": [_lease_json(owner) for owner in owners],
    }


def _lease_json(owner: OwnerRecord) -> dict[str, Any]:
    from .lease import ProcessIdentity, is_gone

    gone = owner.live and is_gone(ProcessIdentity(owner.host, owner.pid, owner.started))
    return {
        "owner": owner.id,
        "agent_id": owner.agent_id,
        "host": owner.host,
        "pid": owner.pid,
        "registered_at": owner.registered_at,
        "expires_at": owner.expires_at,
        "expires_in": round(owner.expires_at - time.time(), 1),
        "live": owner.live,
        "process_gone": gone,
    }


def _lease_line(lease: dict[str, Any]) -> str:
    left = lease["expires_in"]
    if lease["live"]:
        when = f"live, expires in {max(left, 0):.0f} s"
        if lease["process_gone"]:
            when += " (its process is gone: the next agent to start ends it)"
    else:
        when = f"expired {-left:.0f} s ago"
    host = lease["host"].split(":", 1)[0]
    return f"{lease['owner']}  agent {lease['agent_id']}  host {host}  pid {lease['pid']}  {when}"


# ---------------------------------------------------------------------- migrate


@store.command()
@click.option("--url", help=_URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def migrate(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Bring the store's schema up to this turnkit's version (a new database is created).

    Each version is applied in its own transaction; a database made by a
    newer turnkit is refused, untouched. Starting an agent migrates too:
    this does it ahead of time, without loading any plugin.
    """
    found = _run(ctx, _migrate, url)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    elif found["from"] == found["to"]:
        click.echo(f"{found['url']}: schema version {found['to']}, up to date")
    else:
        click.echo(f"{found['url']}: migrated from schema version {found['from']} to {found['to']}")


async def _migrate(config_path: str | None, url: str | None) -> dict[str, Any]:
    config = _config(config_path)
    before = _make(config, url)
    await before.open(upto=0)
    try:
        old = await before.schema_version()
    finally:
        await before.close()
    after = _make(config, url)
    await after.open()
    try:
        new = await after.schema_version()
    finally:
        await after.close()
    return {"engine": after.dialect.name, "url": after.url, "from": old, "to": new}


# ---------------------------------------------------------------------- copy


@store.command("copy")
@click.option("--to", "to_url", required=True, help="The target: an empty database (URL or file path).")
@click.option("--from", "from_url", help="The source (default: the configuration's [store] url).")
@click.option(
    "--ignore-leases", is_flag=True, help="Copy even while processes hold leases on the source (unsafe)."
)
@click.option(
    "--batch-size", default=1000, show_default=True, type=click.IntRange(1), help="Rows per insert."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def copy_store(
    ctx: click.Context,
    to_url: str,
    from_url: str | None,
    ignore_leases: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Copy every session, message, turn, trace and record into an empty database, then verify it.

    Ids and values are kept as they are, in one transaction on the target;
    process leases are not copied. Stop the agent first: the copy refuses a
    source on which a process holds a live lease (unless --ignore-leases),
    since what a worker writes during the copy would be missing from it.
    Afterwards counts and a sha256 over every row are computed on both
    sides; exits 1 if they differ.
    """
    found = _run(ctx, _copy, from_url, to_url, ignore_leases, batch_size)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print_copy(found)
    if not found["equal"]:
        differ = [
            t
            for t in found["source"]["tables"]
            if found["source"]["tables"][t] != found["target"]["tables"][t]
        ]
        click.echo(
            f"error: the copy differs from its source in {', '.join(differ) or 'its row counts'}", err=True
        )
        sys.exit(1)


async def _copy(
    config_path: str | None, from_url: str | None, to_url: str, ignore_leases: bool, batch: int
) -> dict[str, Any]:
    from .errors import StoreError
    from .store import copy
    from .store.migrations import SCHEMA_VERSION

    config = _config(config_path)
    source, target = _make(config, from_url), _make(config, to_url)
    if _same(source, target):
        raise StoreError(f"the source and the target are the same database ({source.url})")
    must_exist(source)
    await source.open(upto=0)  # read only: the source is not migrated behind the user's back
    try:
        version = await source.schema_version()
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{source.url} has schema version {version}, this turnkit copies version {SCHEMA_VERSION};"
                " run `turnkit store migrate` on it first"
            )
        held = [owner for owner in await source.owners() if owner.live]
        if held and not ignore_leases:
            names = "; ".join(_lease_line(_lease_json(owner)) for owner in held)
            raise StoreError(
                f"{source.url} has live leases ({names}): stop the agent first, wait for the lease"
                " to expire, or pass --ignore-leases"
            )
        await target.open()
        try:
            started = time.monotonic()
            copied = await copy.copy_rows(source, target, batch=batch)
            took = time.monotonic() - started
            mine, theirs = await copy.tally(source), await copy.tally(target)
        finally:
            await target.close()
    finally:
        await source.close()
    return {
        "from": {"engine": source.dialect.name, "url": source.url},
        "to": {"engine": target.dialect.name, "url": target.url},
        "seconds": round(took, 3),
        "copied": copied,
        "not_copied": copy.NOT_COPIED,
        "source": _tally_json(mine),
        "target": _tally_json(theirs),
        "equal": copied == mine.counts == theirs.counts and mine.checksum == theirs.checksum,
    }


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "counts": tally.counts,
        "tables": tally.digests,
        "checksum": tally.checksum,
    }


def _print_copy(found: dict[str, Any]) -> None:
    source, target = found["source"], found["target"]
    click.echo(f"from  {found['from']['url']} ({found['from']['engine']})")
    click.echo(f"to    {found['to']['url']} ({found['to']['engine']})")
    click.echo(f"{'table':<14} {'copied':>10} {'source':>10} {'target':>10}  sha256 (source, target)")
    for name, copied in found["copied"].items():
        ours, theirs = source["tables"][name], target["tables"][name]
        digests = ours[:16] + ("  =" if ours == theirs else f"  ≠ {theirs[:16]}")
        click.echo(
            f"{name:<14} {copied:>10} {source['counts'][name]:>10} {target['counts'][name]:>10}  {digests}"
        )
    for name, why in found["not_copied"].items():
        click.echo(f"{name:<14} {'-':>10}  not copied: {why}")
    same = "equal" if found["equal"] else "DIFFERENT"
    click.echo(f"checksum source {source['checksum']}")
    click.echo(f"checksum target {target['checksum']}  ({same})")
    click.echo(f"copied {sum(found['copied'].values())} rows in {found['seconds']:.2f} s")


# ---------------------------------------------------------------------- helpers


def _config(config_path: str | None) -> Config:
    from .config import load_config

    return load_config(config_path)


def _make(config: Config, url: str | None) -> SQLiteStore | PostgresStore:
    """The store ``url`` names (not open); a relative path given on the command line is from the cwd.

    SQLite runs on a thread of its own here: a copy runs two transactions at once.
    """
    import attrs

    from .store import make_store
    from .store.postgres import PostgresStore
    from .store.sqlite import SQLiteStore

    base = config.base_dir if url is None else os.getcwd()
    made = make_store(attrs.evolve(config.store, thread=True), base, url)
    assert isinstance(made, SQLiteStore | PostgresStore)
    return made


def must_exist(store: Store) -> None:
    """Refuse a SQLite file that is not there: opening it would create an empty one.

    For the commands that only read a store (``store info``, ``sessions …``).
    """
    from .errors import StoreError
    from .store.sqlite import MEMORY, SQLiteStore

    if isinstance(store, SQLiteStore) and store.path != MEMORY and not Path(store.path).is_file():
        raise StoreError(
            f"no database at {store.path} (nothing has run on this store yet: `turnkit send` or"
            " `turnkit serve` creates it)"
        )


def _same(one: SQLiteStore | PostgresStore, other: SQLiteStore | PostgresStore) -> bool:
    from .store.sqlite import MEMORY, SQLiteStore

    if isinstance(one, SQLiteStore) and isinstance(other, SQLiteStore):
        return one.path != MEMORY and Path(one.path).resolve() == Path(other.path).resolve()
    return one.url == other.url


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
