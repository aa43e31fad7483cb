"""``turnkit send`` and ``turnkit sessions …``: talking to an agent and reading its sessions.

``send`` starts the agent (plugins, services, store) for one turn. The
``sessions`` commands only open the store: they work while an agent is
running on the same file, and with broken plugins installed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from .store import SessionRecord, Store, TurnRecord

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``work`` with the runtime's errors turned into clean CLI errors."""
    from .errors import TurnkitError

    try:
        return asyncio.run(work(ctx.obj, *args))
    except TurnkitError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("text")
@click.option(
    "--session", "session_id", help="Continue this session (created if absent); default: a new one."
)
@click.option("--json", "as_json", is_flag=True, help="Print the session, the turn and the reply as JSON.")
@click.option(
    "--idempotency-key",
    "key",
    help="Safe retries: a second send with this key (and the same --session) runs nothing new and"
    " prints the first one's reply.",
)
@click.pass_context
def send(ctx: click.Context, text: str, session_id: str | None, as_json: bool, key: str | None) -> None:
    """Send TEXT to the agent as one turn and print the reply.

    A new session's id is printed on stderr, so that the reply alone goes to
    stdout; pass it to --session to continue. Exits 1 when the turn failed
    and 2 when a guard denied it. While `turnkit serve` runs on the same
    store, either process may run the turn; the reply comes here once.
    """
    if key is not None and session_id is None:
        raise click.UsageError("--idempotency-key needs --session: a retry must name the session it retries")
    result = _run(ctx, _send, text, session_id, key)
    turn = result.turn
    if as_json:
        from turnkit_hookspecs import unstructure

        click.echo(json.dumps(unstructure(result), indent=2))
    else:
        # also when the turn was denied or failed: the session is there to inspect
        if session_id is None:
            click.echo(f"session: {turn.session_id}", err=True)
        if result.reply is not None:
            click.echo(result.reply.text)
    if turn.status == "denied":
        click.echo(f"turn denied: {turn.error}", err=True)
        sys.exit(2)
    if turn.status != "completed":
        click.echo(f"turn {turn.status}: {turn.error}", err=True)
        sys.exit(1)


async def _send(config_path: str | None, text: str, session_id: str | None, key: str | None) -> Any:
    from .agent import Agent

    # resume=False: this process runs its own turn (and what nobody runs), never a live process's
    async with Agent(config_path, resume=False) as agent:
        return await agent.send(text, session_id, idempotency_key=key)


@click.group()
def sessions() -> None:
    """List, inspect and export the sessions in the store."""


@sessions.command("list")
@click.option("--kind", help="Only sessions of this kind (chat, task, agent …).")
@click.option("--agent", "agent_id", help="Only sessions of this agent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_sessions(ctx: click.Context, kind: str | None, agent_id: str | None, as_json: bool) -> None:
    """Sessions, most recently active first."""
    records = _run(ctx, _with_store, lambda store: store.list_sessions(agent_id, kind))
    if as_json:
        click.echo(json.dumps([_session_json(r) for r in records], indent=2))
        return
    for record in records:
        info = record.info
        parent = f"  fork of {info.parent_session_id}" if info.parent_session_id else ""
        click.echo(f"{info.session_id}  {info.kind:<6} {info.status:<9} {_when(record.updated_at)}{parent}")
    if not records:
        click.echo("no sessions")


@sessions.command()
@click.argument("session_id", required=False)
@click.pass_context
def tree(ctx: click.Context, session_id: str | None) -> None:
    """Sessions and the sessions forked from them, indented (one tree if SESSION_ID is given)."""
    records = _run(ctx, _with_store, lambda store: store.list_sessions())
    children: dict[str | None, list[SessionRecord]] = {}
    for record in sorted(records, key=lambda r: r.created_at):
        children.setdefault(record.info.parent_session_id, []).append(record)
    if session_id is not None:
        roots = [r for r in records if r.session_id == session_id]
        if not roots:
            raise click.ClickException(f"no session {session_id!r}")
    else:
        roots = children.get(None, [])

    def show(record: SessionRecord, depth: int) -> None:
        info = record.info
        reason = info.metadata.get("fork_reason")
        why = f"  ({reason})" if reason else ""
        click.echo(f"{'    ' * depth}{info.session_id}  {info.kind} {info.status}{why}")
        for child in children.get(info.session_id, []):
            show(child, depth + 1)

    for root in roots:
        show(root, 0)


@sessions.command()
@click.argument("session_id")
@click.option("--trace", is_flag=True, help="Also show every hook call of each turn.")
@click.option("--audit", is_flag=True, help="Also show the audit trail of extension actions.")
@click.pass_context
def show(ctx: click.Context, session_id: str, trace: bool, audit: bool) -> None:
    """A session's messages and turns (with --trace, its hook calls; with --audit, its audit trail)."""
    data = _run(ctx, _with_store, lambda store: _gather(store, session_id, trace, audit))
    record: SessionRecord = data["session"]
    info = record.info
    click.echo(f"session {info.session_id}  kind={info.kind}  status={info.status}  agent={record.agent_id}")
    if info.parent_session_id:
        click.echo(f"forked from {info.parent_session_id} at message {info.fork_point}")
    click.echo("\nmessages:")
    for stored in data["messages"]:
        flags = "".join(
            f" [{f}]" for f, on in (("compressed", stored.compressed), ("summary", stored.summary)) if on
        )
        click.echo(f"  #{stored.id} {stored.message.role}{flags}: {_describe(stored.message)}")
    click.echo("\nturns:")
    for turn in data["turns"]:
        who = turn.initiator + (f":{turn.initiator_id}" if turn.initiator_id else "")
        took = (
            f" {1000 * (turn.finished_at - turn.started_at):.1f} ms"
            if turn.finished_at and turn.started_at
            else ""
        )
        error = f"  {turn.error}" if turn.error else ""
        rerun = f"  (re-run of {turn.rerun_of})" if turn.rerun_of else ""
        click.echo(f"  {turn.number:>4} {turn.turn_id} {turn.status:<11} by {who}{took}{error}{rerun}")
        for call in data["traces"].get(turn.turn_id, []):
            extra = f"  {call.error}" if call.error else ""
            click.echo(
                f"         {call.point:<24} {call.kind:<8} {call.plugin:<24} "
                f"{call.outcome:<7} {1e6 * call.duration:8.0f} µs{extra}"
            )
    if audit:
        click.echo("\naudit:")
        for event in data["audit"]:
            click.echo(
                f"  {_when(event.at)}  {event.extension_id:<20} {event.action:<24} {json.dumps(event.detail)}"
            )


@sessions.command()
@click.argument("session_id")
@click.pass_context
def export(ctx: click.Context, session_id: str) -> None:
    """The session as JSON: info, messages, turns with their traces, audit trail."""
    from turnkit_hookspecs import unstructure

    data = _run(ctx, _with_store, lambda store: _gather(store, session_id, True, True))
    document = {
        "session": _session_json(data["session"]),
        "messages": [
            {
                "id": m.id,
                "turn_id": m.turn_id,
                "created_at": m.created_at,
                "compressed": m.compressed,
                "summary": m.summary,
                "message": unstructure(m.message),
            }
            for m in data["messages"]
        ],
        "turns": [
            {**_turn_json(t), "trace": [_trace_json(c) for c in data["traces"].get(t.turn_id, [])]}
            for t in data["turns"]
        ],
        "audit": [
            {
                "at": e.at,
                "extension_id": e.extension_id,
                "action": e.action,
                "turn_id": e.turn_id,
                "detail": e.detail,
            }
            for e in data["audit"]
        ],
    }
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------- helpers


async def _with_store(config_path: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    from .config import load_config
    from .store import open_store

    config = load_config(config_path)
    store = await open_store(config.store, config.base_dir)
    try:
        return await work(store)
    finally:
        await store.close()


async def _gather(store: Store, session_id: str, trace: bool, audit: bool) -> dict[str, Any]:
    record = await store.get_session(session_id)
    if record is None:
        from .errors import SessionError

        raise SessionError(f"no session {session_id!r}")
    turns = await store.turns(session_id)
    return {
        "session": record,
        "messages": await store.messages(session_id),
        "turns": turns,
        "traces": {t.turn_id: await store.trace(t.turn_id) for t in turns} if trace else {},
        "audit": await store.audit_events(session_id) if audit else [],
    }


def _session_json(record: SessionRecord) -> dict[str, Any]:
    from turnkit_hookspecs import unstructure

    return {
        **unstructure(record.info),
        "agent_id": record.agent_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _turn_json(turn: TurnRecord) -> dict[str, Any]:
    import attrs

    return attrs.asdict(turn)


def _trace_json(call: Any) -> dict[str, Any]:
    return {
        "point": call.point,
        "kind": str(call.kind),
        "plugin": call.plugin,
        "duration": call.duration,
        "outcome": call.outcome,
        "error": call.error,
    }


def _describe(message: Any) -> str:
    """A message on one line: its text, and a note per other block."""
    parts = []
    for block in message.blocks:
        kind = type(block).__name__
        if kind == "TextBlock":
            parts.append(block.text)
        elif kind == "ToolCallBlock":
            parts.append(f"[tool call {block.name} {json.dumps(block.args)}]")
        elif kind == "ToolOutputBlock":
            parts.append(f"[tool output{' (error)' if block.is_error else ''}: {block.output}]")
        else:
            parts.append(f"[{kind}]")
    text = " ".join(" ".join(parts).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
