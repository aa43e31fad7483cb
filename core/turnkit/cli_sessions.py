"""``turnkit send`` and ``turnkit sessions …``: talking to an agent and reading its sessions.

``send`` starts the agent (plugins, services, store) for one turn. The
``sessions`` commands only open the store: they work while an agent is
running on the same file, and with broken plugins installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from .store import SessionRecord, Store

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``work`` with the configuration path first; the runtime's errors become one-line CLI errors."""
    from .cli_run import run

    return run(work, ctx.find_root().obj, *args)


@click.command()
@click.argument("text")
@click.option(
    "--session",
    "session_id",
    help="Continue this session: its id or the start of it (a new id creates that session);"
    " default: a new one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the session id, the turn and the reply as JSON.")
@click.option("--stream", is_flag=True, help="Print the reply as the model writes it.")
@click.option(
    "--idempotency-key",
    "key",
    help="Safe retries: a second send with this key (and the same --session) runs nothing new and"
    " prints the first one's reply.",
)
@click.pass_context
def send(
    ctx: click.Context, text: str, session_id: str | None, as_json: bool, stream: bool, key: str | None
) -> None:
    """Send TEXT to the agent as one turn and print the reply.

    A new session's id is printed on stderr, so that the reply alone goes to
    stdout; pass it to --session to continue. Exits 1 when the turn failed
    and 2 when a guard denied it. While `turnkit serve` runs on the same
    store, either process may run the turn; the reply comes here once (with
    --stream, whole at the end when the other process ran it).
    """
    if key is not None and session_id is None:
        raise click.UsageError("--idempotency-key needs --session: a retry must name the session it retries")
    if stream and as_json:
        raise click.UsageError("--stream and --json do not go together: the JSON is printed whole")
    printer = StreamPrinter() if stream else None
    # --json is for programs: the reply's author says "echo" there
    result = _run(ctx, _send, text, session_id, key, printer, not as_json)
    turn = result.turn
    if as_json:
        from turnkit_hookspecs import unstructure

        click.echo(json.dumps({"session_id": turn.session_id, **unstructure(result)}, indent=2))
    else:
        if printer is not None:
            printer.finish(result.reply.text if result.reply is not None else None)
        elif result.reply is not None:
            click.echo(result.reply.text)
        # also when the turn was denied or failed: the session is there to inspect
        if session_id is None:
            click.echo(f"session: {turn.session_id}", err=True)
    if turn.status == "denied":
        click.echo(f"turn denied: {turn.error}", err=True)
        sys.exit(2)
    if turn.status != "completed":
        click.echo(f"turn {turn.status}: {turn.error}", err=True)
        sys.exit(1)


async def _send(
    config_path: str | None,
    text: str,
    session_id: str | None,
    key: str | None,
    printer: StreamPrinter | None,
    tell_echo: bool,
) -> Any:
    from .agent import Agent
    from .models import echo_notice
    from .prefixes import resolve_session_id

    # resume=False: this process runs its own turn (and what nobody runs), never a live process's
    async with Agent(config_path, resume=False) as agent:
        if tell_echo and (notice := echo_notice(agent.config, agent.model)):
            click.echo(notice, err=True)
        if session_id is not None:
            session_id = await resolve_session_id(agent.store, session_id, missing_ok=True) or session_id
        listener = printer.write if printer is not None else None
        return await agent.send(text, session_id, idempotency_key=key, stream=listener)


class StreamPrinter:
    """``send --stream``: the reply's chunks on stdout as they come, then the line ended.

    A reply changed after it was streamed (a ``turn_outbound`` plugin
    redacting it) is printed again, whole, on the next line, as the terminal
    channel does: what was streamed cannot be taken back.
    """

    def __init__(self) -> None:
        self.streamed = ""

    async def write(self, chunk: str) -> None:
        self.streamed += chunk
        click.echo(chunk, nl=False)

    def finish(self, reply: str | None) -> None:
        """End the streamed line; print ``reply`` when it is not what was streamed."""
        if not self.streamed:
            if reply is not None:
                click.echo(reply)
        elif reply is None or reply == self.streamed:
            click.echo()
        else:
            click.echo("\n" + reply)


@click.group()
def sessions() -> None:
    """List, inspect and export the sessions in the store.

    A SESSION_ID may be the start of an id (at least 4 characters) when it is
    the start of only one. These commands only read: a store that does not
    exist yet is an error, never created.
    """


@sessions.command("list")
@click.option("--kind", help="Only sessions of this kind (chat, task, agent …).")
@click.option("--agent", "agent_id", help="Only sessions of this agent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_sessions(ctx: click.Context, kind: str | None, agent_id: str | None, as_json: bool) -> None:
    """Sessions, most recently active first."""
    records = _run(ctx, _with_store, lambda store: store.list_sessions(agent_id, kind))
    if as_json:
        from .console.documents import session_json

        click.echo(json.dumps([session_json(r) for r in records], indent=2))
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

    async def read(store: Store) -> tuple[str | None, list[SessionRecord]]:
        from .prefixes import resolve_session_id

        root = None if session_id is None else await resolve_session_id(store, session_id)
        return root, await store.list_sessions()

    root, records = _run(ctx, _with_store, read)
    children: dict[str | None, list[SessionRecord]] = {}
    for record in sorted(records, key=lambda r: r.created_at):
        children.setdefault(record.info.parent_session_id, []).append(record)
    roots = [r for r in records if r.session_id == root] if root else children.get(None, [])

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
@click.option(
    "--instructions",
    "full",
    is_flag=True,
    help="Print the instructions each turn used in full (default: their first line and length).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the session as `sessions export` does.")
@click.pass_context
def show(ctx: click.Context, session_id: str, trace: bool, audit: bool, full: bool, as_json: bool) -> None:
    """A session's messages and turns, each turn with the instructions it used (with --trace, its
    hook calls; with --audit, its audit trail)."""
    trace, audit = trace or as_json, audit or as_json
    data = _run(ctx, _with_store, lambda store: _gather(store, session_id, trace, audit))
    if as_json:
        click.echo(json.dumps(_document(data), indent=2, ensure_ascii=False))
        return
    record: SessionRecord = data["session"]
    info = record.info
    click.echo(f"session {info.session_id}  kind={info.kind}  status={info.status}  agent={record.agent_id}")
    if info.parent_session_id:
        click.echo(f"forked from {info.parent_session_id} at message {info.fork_point}")
    if data["instructions"] is not None:
        click.echo(_instructions("instructions of its own", data["instructions"], full, ""))
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
        if turn.instructions is not None:
            click.echo(_instructions("instructions", turn.instructions, full, " " * 9))
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
@click.option(
    "--html",
    "as_html",
    is_flag=True,
    help="Print a self-contained HTML page instead (readable offline: no script, nothing fetched).",
)
@click.option("--turn", "turn_id", help="With --html: only this turn (its id or the start of it).")
@click.pass_context
def export(ctx: click.Context, session_id: str, as_html: bool, turn_id: str | None) -> None:
    """The session as JSON: info, messages, turns with their traces, audit trail (or, with --html, as a
    page, the way the console exports it)."""
    if turn_id is not None and not as_html:
        raise click.UsageError("--turn goes with --html")
    if as_html:
        click.echo(_run(ctx, _with_store, lambda store: _html(store, session_id, turn_id)), nl=False)
        return
    data = _run(ctx, _with_store, lambda store: _gather(store, session_id, True, True))
    click.echo(json.dumps(_document(data), indent=2, ensure_ascii=False))


async def _html(store: Store, given: str, turn: str | None) -> str:
    """The export page of a session (or of one of its turns), with the console's renderer."""
    from .console.export import render_session, render_turn
    from .console.reader import ConsoleReader
    from .prefixes import resolve_session_id

    reader = ConsoleReader(store)
    session_id = await resolve_session_id(store, given)
    assert session_id is not None  # resolving raised for a missing session
    if turn is None:
        return render_session(await reader.session(session_id))
    turns = [t.turn_id for t in await store.turns(session_id) if t.turn_id.startswith(turn)]
    if len(turns) != 1:
        found = "no turn" if not turns else f"{len(turns)} turns"
        raise click.ClickException(f"{found} of session {session_id} starts with {turn!r}")
    return render_turn(await reader.turn(turns[0]))


# ---------------------------------------------------------------------- helpers


def _document(data: dict[str, Any]) -> dict[str, Any]:
    """What `sessions export` prints; each turn carries the instructions it used."""
    from .console.documents import session_document

    return session_document(
        data["session"], data["instructions"], data["messages"], data["turns"], data["traces"], data["audit"]
    )


async def _with_store(config_path: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on the configuration's store; a SQLite file that is not there is refused, not made."""
    from .cli_store import must_exist
    from .config import load_config
    from .store import make_store

    config = load_config(config_path)
    store = make_store(config.store, config.base_dir)
    must_exist(store)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


async def _gather(store: Store, given: str, trace: bool, audit: bool) -> dict[str, Any]:
    from .prefixes import resolve_session_id

    session_id = await resolve_session_id(store, given)
    record = await store.get_session(session_id) if session_id is not None else None
    assert session_id is not None and record is not None  # resolving raised for a missing session
    turns = await store.turns(session_id)
    return {
        "session": record,
        "instructions": await store.session_instructions(session_id),
        "messages": await store.messages(session_id),
        "turns": turns,
        "traces": {t.turn_id: await store.trace(t.turn_id) for t in turns} if trace else {},
        "audit": await store.audit_events(session_id) if audit else [],
    }


def _instructions(label: str, text: str, full: bool, indent: str) -> str:
    """Instructions under ``label``: their first line, quoted, and their length; or in full, indented."""
    if full:
        return f"{indent}{label}:\n" + "\n".join(f"{indent}  {line}" for line in text.splitlines())
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > 80:
        first = first[:79] + "…"
    return f"{indent}{label}: {json.dumps(first, ensure_ascii=False)} ({len(text)} characters)"


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
