"""A session, or one turn, as a self-contained HTML page: readable offline, years later.

The page holds everything it shows: the console's stylesheet inlined, no
script, no image, no link out, so it opens from a file or a mail attachment
with no network and no turnkit. It renders the documents the console's API
serves (:class:`~turnkit.console.reader.ConsoleReader`), the turn's
waterfall included (:mod:`~turnkit.console.waterfall`), so what is exported
is what the console showed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

#: What the page says made it.
GENERATOR = "turnkit console export"


def render_session(document: Mapping[str, Any]) -> str:
    """The page of a session (:meth:`ConsoleReader.session`): its messages, turns, tree, context, audit."""
    session = document["session"]
    tree = document["tree"]
    body = [
        f"<h1>Session <code>{_e(session['session_id'])}</code></h1>",
        _facts(session),
        _instructions(document["instructions"]),
        "<h2>Fork tree</h2>",
        _tree(tree, session),
        "<h2>Messages</h2>",
        _messages(document["messages"]),
        "<h2>Turns</h2>",
        _turns(document["turns"]),
        "<h2>Contributed context</h2>",
        _context(document["context"]),
        "<h2>Audit</h2>",
        _audit(document["audit"]),
    ]
    return _page(f"turnkit session {session['session_id']}", body)


def render_turn(document: Mapping[str, Any]) -> str:
    """The page of a turn (:meth:`ConsoleReader.turn`): its messages and its hook calls on a time axis."""
    turn = document["turn"]
    body = [
        f"<h1>Turn {turn['number']} of session <code>{_e(turn['session_id'])}</code></h1>",
        _turn_facts(turn),
        "<h2>Messages</h2>",
        _messages(document["messages"]),
        "<h2>Hook calls</h2>",
        waterfall_html(document["waterfall"]),
        "<h2>Audit</h2>",
        _audit(document["audit"]),
    ]
    return _page(f"turnkit turn {turn['turn_id']}", body)


def waterfall_html(waterfall: Mapping[str, Any]) -> str:
    """The bars of a turn's waterfall, as the console's page draws them."""
    rows = []
    for row in waterfall["rows"]:
        if "heading" in row:
            rows.append(f'<div class="wf-row wf-heading">{_e(row["heading"])}</div>')
            continue
        error = f' title="{_e(row["error"])}"' if row.get("error") else ""
        rows.append(
            f'<div class="wf-row wf-{row["state"]} wf-depth-{row["depth"]}"{error}>'
            f'<span class="wf-label"><b>{_e(row["point"])}</b> {_e(row["kind"])} · {_e(row["plugin"])}</span>'
            f'<span class="wf-track"><span class="wf-bar" style="margin-left:{row["offset"]}%;'
            f'width:{row["width"]}%"></span></span>'
            f'<span class="wf-time">{_ms(row["duration"])} {_e(row["outcome"])}</span></div>'
        )
    if not rows:
        return "<p class=muted>no hook calls recorded</p>"
    return f'<div class="waterfall">{"".join(rows)}<p class=muted>axis: {_ms(waterfall["span"])}</p></div>'


# ---------------------------------------------------------------------- pieces


def _page(title: str, body: Iterable[str]) -> str:
    css = resources.files(__package__).joinpath("static/console.css").read_text(encoding="utf-8")
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR}">'
        f"<title>{_e(title)}</title><style>{css}</style></head>"
        f'<body class="export"><main>{"".join(body)}</main></body></html>\n'
    )


def _facts(session: Mapping[str, Any]) -> str:
    items = {
        "kind": session["kind"],
        "status": session["status"],
        "agent": session["agent_id"],
        "created": _when(session["created_at"]),
        "updated": _when(session["updated_at"]),
        "channel": session["metadata"].get("channel"),
        "fork reason": session["metadata"].get("fork_reason"),
    }
    return _dl(items)


def _turn_facts(turn: Mapping[str, Any]) -> str:
    took = (turn["finished_at"] - turn["started_at"]) if turn["finished_at"] and turn["started_at"] else None
    items = {
        "status": turn["status"],
        "initiator": turn["initiator"] + (f":{turn['initiator_id']}" if turn["initiator_id"] else ""),
        "queued": _when(turn["queued_at"]),
        "took": None if took is None else _ms(took),
        "error": turn["error"],
        "re-run of": turn["rerun_of"],
        "instructions": turn["instructions"],
    }
    return _dl(items)


def _dl(items: Mapping[str, Any]) -> str:
    shown = "".join(f"<dt>{_e(k)}</dt><dd>{_e(str(v))}</dd>" for k, v in items.items() if v not in (None, ""))
    return f'<dl class="facts">{shown}</dl>'


def _instructions(text: str | None) -> str:
    if text is None:
        return ""
    return f"<h2>Its own instructions</h2><pre>{_e(text)}</pre>"


def _tree(tree: Mapping[str, Any], session: Mapping[str, Any]) -> str:
    def item(s: Mapping[str, Any], here: bool = False) -> str:
        mark = " (this session)" if here else ""
        return f"<li><code>{_e(s['session_id'])}</code> <span class=tag>{_e(s['status'])}</span>{mark}"

    nested = "".join(item(a) + "<ul>" for a in tree["ancestors"])
    nested += item(session, True)
    nested += "<ul>" + "".join(item(c) + "</li>" for c in tree["children"]) + "</ul></li>"
    nested += "".join(item(s) + "</li>" for s in tree["siblings"])
    nested += "</ul></li>" * len(tree["ancestors"])
    return f'<ul class="tree">{nested}</ul>'


def _messages(messages: Sequence[Mapping[str, Any]]) -> str:
    if not messages:
        return "<p class=muted>no messages</p>"
    shown = []
    for stored in messages:
        message = stored["message"]
        marks = [m for m in ("compressed", "summary") if stored[m]]
        if stored["merged_from"]:
            marks.append("merge result")
        classes = " ".join(["msg", f"msg-{message['role']}", *(f"msg-{m.replace(' ', '-')}" for m in marks)])
        tags = "".join(f"<span class=tag>{_e(m)}</span>" for m in marks)
        shown.append(
            f'<div class="{classes}"><div class="msg-head">#{stored["id"]} {_e(message["role"])} {tags}'
            f'<span class="muted">{_when(stored["created_at"])}</span></div>'
            f'<div class="msg-body">{"".join(_block(b) for b in message["blocks"])}</div></div>'
        )
    return "".join(shown)


def _block(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return f"<p>{_e(block['text'])}</p>"
    if kind == "tool_call":
        args = _e(json.dumps(block["args"], ensure_ascii=False))
        return f"<p class=tool>tool call <b>{_e(block['name'])}</b> <code>{args}</code></p>"
    if kind == "tool_output":
        error = " (error)" if block.get("is_error") else ""
        return f"<p class=tool>tool output{error}: <code>{_e(str(block.get('output')))}</code></p>"
    return f"<p class=muted>[{_e(str(kind))}]</p>"


def _turns(turns: Sequence[Mapping[str, Any]]) -> str:
    cells = [
        (
            str(t["number"]),
            f"<code>{_e(t['turn_id'])}</code>",
            _e(t["status"]),
            _e(t["initiator"]),
            _e(t["error"] or ""),
        )
        for t in turns
    ]
    classes = [f"turn-{_e(t['status'])}" for t in turns]
    return _table(("#", "turn", "status", "by", "error"), cells, "no turns", classes)


def _context(items: Sequence[Mapping[str, Any]]) -> str:
    cells = [
        (_e(c["key"]), _e(c["value"]), _e(c["extension_id"]), _e(c["consumed_by"] or "pending"))
        for c in items
    ]
    return _table(("key", "value", "by", "used by turn"), cells)


def _audit(events: Sequence[Mapping[str, Any]]) -> str:
    cells = [
        (
            _when(e["at"]),
            _e(e["extension_id"]),
            _e(e["action"]),
            f"<code>{_e(json.dumps(e['detail'], ensure_ascii=False))}</code>",
        )
        for e in events
    ]
    return _table(("at", "plugin", "action", "detail"), cells)


def _table(
    headers: Sequence[str], cells: Sequence[Sequence[str]], empty: str = "none", classes: Sequence[str] = ()
) -> str:
    """A table of already-escaped ``cells`` under ``headers``; ``empty`` when there is no row."""
    if not cells:
        return f"<p class=muted>{empty}</p>"
    head = "".join(f"<th>{header}</th>" for header in headers)
    rows = "".join(
        (f'<tr class="{classes[index]}">' if classes else "<tr>")
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for index, row in enumerate(cells)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
