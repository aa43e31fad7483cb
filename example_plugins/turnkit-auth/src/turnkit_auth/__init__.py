"""turnkit-auth: allow-lists and roles for a turnkit agent, and a directory of who talked to it.

Registered through the ``turnkit.plugins`` entry point
``auth = "turnkit_auth:AuthPlugin"`` and configured by ``[plugin.auth]``
(:class:`AuthSettings`). It implements:

* ``turn_authorize`` (guard) -- every turn, by who started it;
* ``chat_authorize`` (guard) -- per-channel role lists for chat senders;
* ``chat_principal_role`` (resolve) -- the role of a chat sender;
* ``chat_principal_seen`` (effect) -- the directory read by :func:`principals`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .directory import NAMESPACE, SeenPrincipal, collection_for, principals, record_seen
from .ids import MalformedPrincipalId, parse_principal_id
from .plugin import AuthPlugin
from .policy import authorize_sender, authorize_turn, turn_principal
from .settings import AuthSettings, InitiatorRules, Rule

try:
    __version__ = version("turnkit-auth")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "NAMESPACE",
    "AuthPlugin",
    "AuthSettings",
    "InitiatorRules",
    "MalformedPrincipalId",
    "Rule",
    "SeenPrincipal",
    "__version__",
    "authorize_sender",
    "authorize_turn",
    "collection_for",
    "parse_principal_id",
    "principals",
    "record_seen",
    "turn_principal",
]
