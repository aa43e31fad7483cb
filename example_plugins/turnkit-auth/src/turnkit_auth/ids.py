"""The syntax of principal ids and role names.

A principal id is ``<channel>:<user>``: the chat service writes exactly this
into a chat turn's ``initiator_id`` (``telegram:42``, ``http:alice``,
``terminal:ann``). The same syntax is used for the ids this plugin gives to
other initiators (``task:nightly``, ``agent:billing``), so one ``roles`` table
covers them all. Anything else is malformed, and a guard that meets a
malformed id denies: it cannot know whom it would let in.
"""

from __future__ import annotations

import re

#: A channel or a role: letters, digits and ``_ . -``, starting with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class MalformedPrincipalId(ValueError):
    """A principal id that does not follow ``<channel>:<user>``; the message says what is wrong."""


def is_name(text: str) -> bool:
    """Whether ``text`` may be a channel or a role name."""
    return _NAME.fullmatch(text) is not None


def parse_principal_id(principal_id: str) -> tuple[str, str]:
    """Split a principal id into ``(channel, user)``, or raise :class:`MalformedPrincipalId`.

    The user part is everything after the first ``:`` (it may hold more
    colons); it must not be empty, start or end with white space, or hold
    control or invisible characters.

    >>> parse_principal_id("telegram:42")
    ('telegram', '42')
    >>> parse_principal_id("alice")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    turnkit_auth.ids.MalformedPrincipalId: 'alice' is not a principal id: it has no ':' (expected ...)
    """
    channel, colon, user = principal_id.partition(":")
    if not colon:
        problem = "it has no ':'"
    elif not is_name(channel):
        problem = f"the channel {channel!r} may hold only letters, digits, '_', '.' and '-'"
    elif not user:
        problem = "the user part is empty"
    elif user != user.strip() or not user.isprintable():
        problem = "the user part has surrounding white space, control or invisible characters"
    else:
        return channel, user
    raise MalformedPrincipalId(
        f"{principal_id!r} is not a principal id: {problem} "
        "(expected <channel>:<user>, such as 'telegram:42' or 'http:alice')"
    )
