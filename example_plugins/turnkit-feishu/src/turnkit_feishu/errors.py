"""What goes wrong talking to Feishu, by whom it is answered.

:class:`Refused` and :class:`Malformed` are about requests Feishu (or
someone pretending to be it) posted to the channel: the route answers them
401 and 400. :class:`FeishuError` is about calls the channel makes to the
open platform: raised from ``deliver``, it makes the inbox try the reply
again later.
"""

from __future__ import annotations


class Refused(Exception):
    """A request that did not prove it came from Feishu just now: answered 401, never a turn."""


class Malformed(ValueError):
    """An authentic request whose body is not an event the channel can read (answered 400)."""


class FeishuError(Exception):
    """The open platform refused a call: its ``code`` and ``msg``, and the HTTP status."""

    def __init__(self, call: str, status: int, code: int | None, msg: str) -> None:
        self.call = call
        self.status = status
        self.code = code
        self.msg = msg
        super().__init__(f"Feishu {call}: HTTP {status}, code {code}: {msg}")
