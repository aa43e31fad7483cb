"""Where the audit file is and how one record becomes one line of it.

Every record is encoded to a single line of UTF-8 JSON ending in ``\\n`` and
appended with one ``write`` on a file opened in append mode, under a lock
shared by every thread of the process. The file is opened for each record and
closed again, so a rotated or truncated file is picked up at the next record
without a signal or a restart.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The environment variable naming the audit file.
AUDIT_FILE_ENV = "TURNKIT_AUDIT_FILE"

#: The file written when :data:`AUDIT_FILE_ENV` is unset or empty (relative: to the working directory).
DEFAULT_AUDIT_FILE = "turnkit-audit.jsonl"

# Characters ``json.dumps(..., ensure_ascii=False)`` leaves raw although some
# readers (``str.splitlines``, for one) take them for line breaks.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})

# One lock for the whole process: the runtime runs ``def`` effects on a pool of
# worker threads, so several turns may finish and be written at the same time.
_lock = threading.Lock()


class AuditWriteError(OSError):
    """The audit file could not be written (``path``); the original error is ``__cause__``."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(
            f"turnkit-jsonl-audit cannot append to the audit file {str(path)!r}: {reason} "
            f"(set {AUDIT_FILE_ENV} to a writable file)"
        )
        self.path = path


def audit_file(environ: Mapping[str, str] | None = None) -> Path:
    """The audit file named by ``TURNKIT_AUDIT_FILE`` (read at every call), or the default.

    ``~`` is expanded; a relative path is relative to the working directory
    at the time of the write.
    """
    env = os.environ if environ is None else environ
    return Path(env.get(AUDIT_FILE_ENV) or DEFAULT_AUDIT_FILE).expanduser()


def encode_line(record: Mapping[str, Any]) -> bytes:
    """``record`` as one line of UTF-8 JSON, ending in the only line break it holds."""
    text = json.dumps(record, ensure_ascii=False, allow_nan=False).translate(_LINE_BREAKS)
    return (text + "\n").encode("utf-8")


def _private(path: str, flags: int) -> int:
    # A new audit file holds users' messages: readable by its owner only.
    return os.open(path, flags, 0o600)


def append_record(record: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Append ``record`` as one line to ``path`` (default: :func:`audit_file`); return the path.

    The file is created if missing (mode ``0o600``, less the umask), its
    folder is not. Any failure to open or
    write it raises :class:`AuditWriteError`, chained to the original error.
    """
    target = audit_file() if path is None else Path(path)
    line = encode_line(record)
    try:
        with _lock, open(target, "ab", opener=_private) as stream:
            stream.write(line)
            stream.flush()
    except OSError as exc:
        raise AuditWriteError(target, exc) from exc
    return target
