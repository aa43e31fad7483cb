"""The store's decoded history messages, so that a turn's window is not parsed again each turn.

A stored message's body never changes (compression only flips a column), so
each is decoded once. A turn's window is mostly the previous turn's: a
message seen before costs a dict lookup and a tuple comparison, no JSON
parse and no new record, and the window reads no body at all
(:data:`WINDOW_COLUMNS`, all in the ``messages_window`` index).

The cache holds committed rows only: a transaction sees what it wrote and
decoded through its own :class:`TxCache`, which hands them to the store's
:class:`MessageCache` once the transaction has committed. An id that a
rolled-back transaction had used, and that SQLite gives out again, thus
never finds another message's record. A message compressed since it was
cached no longer matches its row, and is decoded again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from turnkit_hookspecs import Message

from .records import StoredMessage
from .rows import Row, message_body

#: What the prompt window reads of a message: enough to tell it from any other row of that
#: id, all of it in the ``messages_window`` index, so that reading it touches no table page.
WINDOW_COLUMNS = "id, session_id, compressed, summary"
#: Where ``summary`` is in a row of :data:`WINDOW_COLUMNS`.
WINDOW_SUMMARY = 3

#: A cached message: its ``messages`` row (``MESSAGE_COLUMNS``), its window row, its record.
Entry = tuple[Row, Row, StoredMessage]


def entry(row: Row, message: Message) -> Entry:
    """The entry of ``row`` (in ``MESSAGE_COLUMNS`` order), whose message is ``message``."""
    message_id, session_id, turn_id, _, created, compressed, summary = row
    stored = StoredMessage(message_id, session_id, turn_id, message, created, bool(compressed), bool(summary))
    return tuple(row), (message_id, session_id, compressed, summary), stored


class MessageCache:
    """The newest ``size`` committed messages' entries by id, for one store."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        #: By id; read freely, added to by :meth:`keep` only.
        self.entries: OrderedDict[int, Entry] = OrderedDict()

    def keep(self, entries: dict[int, Entry]) -> None:
        """Remember entries of a transaction that committed (the oldest fall out)."""
        self.entries.update(entries)
        while len(self.entries) > self._size:
            self.entries.popitem(last=False)


class TxCache:
    """One transaction's view of the store's cache: the cache, and the entries it made itself."""

    __slots__ = ("_cache", "_made")

    def __init__(self, cache: MessageCache) -> None:
        self._cache = cache
        self._made: dict[int, Entry] = {}

    def _entry(self, message_id: int) -> Entry | None:
        made = self._made.get(message_id)
        return made if made is not None else self._cache.entries.get(message_id)

    def put(self, row: Row, message: Message) -> StoredMessage:
        """The record of ``row`` (just written), whose message is ``message``."""
        made = self._made[row[0]] = entry(row, message)
        return made[2]

    def stored(self, row: Row) -> StoredMessage:
        """The record of a ``messages`` row (in ``MESSAGE_COLUMNS`` order), decoded if not known."""
        known = self._entry(row[0])
        if known is not None and known[0] == row:
            return known[2]
        message_id, session_id, _, body, _, _, _ = row
        if known is not None and known[0][3] == body:  # compressed since: the same message
            return self.put(row, known[2].message)
        return self.put(row, message_body(body, message_id, session_id))

    def window(self, rows: Sequence[Row]) -> dict[int, StoredMessage | None]:
        """The records of window rows (in :data:`WINDOW_COLUMNS` order) by id, in their order;
        ``None`` for one whose body must be read (not known, or known as another row)."""
        found: dict[int, StoredMessage | None] = {}
        made, cached = self._made, self._cache.entries.get
        for row in rows:
            known = made.get(row[0]) or cached(row[0])
            found[row[0]] = known[2] if known is not None and known[1] == row else None
        return found

    def get(self, message_id: int, body: str, session_id: str) -> Message:
        """The message of row ``message_id`` with this JSON ``body`` (decoded if not known)."""
        known = self._entry(message_id)
        if known is not None and known[0][3] == body:
            return known[2].message
        return message_body(body, message_id, session_id)

    def committed(self) -> None:
        """The transaction committed: what it learnt joins the store's cache."""
        if self._made:
            self._cache.keep(self._made)
