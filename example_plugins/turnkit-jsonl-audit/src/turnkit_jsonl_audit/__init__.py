"""turnkit-jsonl-audit: one JSON line per finished turn, appended to an audit file.

Registered through the ``turnkit.plugins`` entry point ``jsonl-audit`` as
:class:`JsonlAuditPlugin` (one instance per agent). It implements the three
effect points of the turnkit contract that observe the end of a turn:

* ``turn_completed`` -- the record holds the inbound text and the reply's text;
* ``turn_denied`` -- the record holds the guard's reason and the plugin that denied;
* ``turn_failed`` -- the record holds the error.

The file is ``file`` of the agent's ``[plugin.jsonl-audit]`` table (relative
to the configuration file's folder); without it, the environment variable
``TURNKIT_AUDIT_FILE`` names it at each write (default
``turnkit-audit.jsonl`` in the working directory). A failure to write
it raises :class:`AuditWriteError`; the runtime isolates effects, so the turn
is not affected and the failure is logged and traced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import attrs
from turnkit_hookspecs import Deny, ExecutionContext, Message, Plugin, TurnInfo, hookimpl

from .writer import (
    AUDIT_FILE_ENV,
    DEFAULT_AUDIT_FILE,
    AuditWriteError,
    append_record,
    audit_file,
    encode_line,
)

try:
    __version__ = version("turnkit-jsonl-audit")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"


def timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in UTC as ISO 8601 with milliseconds and a ``Z``."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_record(
    turn: TurnInfo,
    message: Message,
    *,
    reply: Message | None = None,
    deny: Deny | None = None,
    error: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The audit record of a finished turn, as written to the file.

    The fields common to every record come first; then ``reply`` (its text),
    ``deny`` (reason and plugin) or ``error``, whichever is given. Only text
    blocks are recorded: ``message`` and ``reply`` are their ``.text``.
    """
    record: dict[str, Any] = {
        "time": timestamp(time),
        "session_id": turn.session_id,
        "turn_id": turn.turn_id,
        "number": turn.number,
        "status": turn.status,
        "initiator": turn.initiator,
        "initiator_id": turn.initiator_id,
        "message": message.text,
    }
    if reply is not None:
        record["reply"] = reply.text
    if deny is not None:
        record["deny"] = {"reason": deny.reason, "plugin": deny.plugin}
    if error is not None:
        record["error"] = error
    return record


@attrs.frozen
class AuditSettings:
    """``[plugin.jsonl-audit]``: ``file`` is the audit file; empty means ``$TURNKIT_AUDIT_FILE``."""

    file: str = ""


class JsonlAuditPlugin(Plugin):
    """The plugin: appends one record per finished turn to the audit file."""

    settings_class = AuditSettings
    #: Also what an instance nobody configured uses: the environment variable, then the default.
    settings: AuditSettings = AuditSettings()

    def __init__(self) -> None:
        #: The file from the settings, resolved at ``configure``; ``None``: the variable, at each write.
        self.path: Path | None = None

    def configure(self, context: ExecutionContext) -> None:
        """Resolve ``file`` against the configuration file's folder, like every path in it."""
        super().configure(context)
        if self.settings.file:
            self.path = Path(context.config.base_dir) / Path(self.settings.file).expanduser()

    @hookimpl
    def turn_completed(self, turn: TurnInfo, message: Message, reply: Message) -> None:
        """Append the record of a completed turn: inbound text and reply text."""
        append_record(audit_record(turn, message, reply=reply), self.path)

    @hookimpl
    def turn_denied(self, turn: TurnInfo, message: Message, deny: Deny) -> None:
        """Append the record of a denied turn: inbound text, the reason and who denied it."""
        append_record(audit_record(turn, message, deny=deny), self.path)

    @hookimpl
    def turn_failed(self, turn: TurnInfo, message: Message, error: str) -> None:
        """Append the record of a failed turn: inbound text and the error."""
        append_record(audit_record(turn, message, error=error), self.path)


__all__ = [
    "AUDIT_FILE_ENV",
    "DEFAULT_AUDIT_FILE",
    "AuditSettings",
    "AuditWriteError",
    "JsonlAuditPlugin",
    "__version__",
    "append_record",
    "audit_file",
    "audit_record",
    "encode_line",
    "timestamp",
]
