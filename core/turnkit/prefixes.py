"""Naming a session by the start of its id, as people do with ids they copy from a listing.

Ids are 32 hex digits; typing all of them is a chore, so every command that
takes a session id also takes a prefix of one (``turnkit sessions show
e269``), like the terminal's ``/switch``. An id that exists is always
itself, even when it also starts others' ids; a prefix must be at least
:data:`MIN_PREFIX` characters (shorter ones are far too likely to name a
session by accident) and name exactly one session. An ambiguous prefix is
refused with the ids it could mean.
"""

from __future__ import annotations

from .errors import SessionError
from .store import Store

#: The fewest characters that may stand for a longer id.
MIN_PREFIX = 4
#: How many candidates an ambiguous prefix's error lists.
SHOWN = 5


async def resolve_session_id(store: Store, given: str, *, missing_ok: bool = False) -> str | None:
    """The id of the session ``given`` names (its id, or a prefix of exactly one id).

    No such session is a :class:`SessionError`, or ``None`` with ``missing_ok``
    (``turnkit send --session`` then creates one by that id).
    """
    if await store.get_session(given) is not None:
        return given
    found = await store.session_ids_starting(given, SHOWN + 1) if len(given) >= MIN_PREFIX else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        listed = ", ".join(found[:SHOWN]) + (", …" if len(found) > SHOWN else "")
        raise SessionError(f"{given!r} is the start of several session ids ({listed}): give more of it")
    if missing_ok:
        return None
    short = f" (a shortened id needs at least {MIN_PREFIX} characters)" if len(given) < MIN_PREFIX else ""
    raise SessionError(f"no session {given!r}{short}")
