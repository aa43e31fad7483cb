"""Who may open the bot's socket: the access token, the bot's account, the client's role.

A OneBot implementation connecting to a reverse WebSocket sends its access
token as ``Authorization: Bearer <token>`` (some write the scheme
``Token``), or, where it cannot set headers, as the query parameter
``access_token``; it names the bot's QQ account in ``X-Self-ID`` and its
client's kind in ``X-Client-Role`` (``Universal``: events and API calls on
one connection, the only kind served here).

Without a configured token the socket is open to whoever reaches it, so it
is then opened only to this machine (a loopback peer): the common
deployment, the implementation beside the agent, works without a token,
and an agent listening on a public address does not hand its bot to
anyone. The token is compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

#: The one client role served (split ``API`` / ``Event`` clients are not).
UNIVERSAL = "universal"


class Refused(Exception):
    """A refused handshake: the HTTP ``status`` it is answered with, and why (for the log and the client)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def admit(headers: Mapping[str, str], query: Mapping[str, str], peer: str | None, token: str | None) -> str:
    """The bot's account (``X-Self-ID``) of a handshake that may connect; :class:`Refused` otherwise.

    ``headers`` are looked up by lower-case name; ``peer`` is the client's
    address, which matters only without a ``token``.
    """
    if token is None:
        if not is_loopback(peer):
            raise Refused(
                403,
                f"no access token is configured, so only connections from this machine are accepted"
                f" (this one is from {peer}): set access_token_env on the agent and the same token"
                " on the OneBot implementation",
            )
    else:
        presented = presented_token(headers, query)
        if presented is None:
            raise Refused(401, "missing access token: send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Refused(401, "wrong access token")
    self_id = headers.get("x-self-id", "").strip()
    if not self_id.isdigit():
        raise Refused(400, "missing or malformed X-Self-ID header: it names the bot's QQ account")
    role = headers.get("x-client-role", "Universal").strip()
    if role.lower() != UNIVERSAL:
        raise Refused(
            400,
            f"X-Client-Role {role!r} is not served: configure the OneBot implementation's reverse"
            " WebSocket as one universal client (events and API calls on one connection)",
        )
    return self_id


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token the client sent: the ``Authorization`` header's (``Bearer`` or ``Token``), or the query's."""
    header = headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        return credentials.strip() if scheme.lower() in ("bearer", "token") else None
    return query.get("access_token")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is an address of this machine's loopback (IPv4-mapped IPv6 included)."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
