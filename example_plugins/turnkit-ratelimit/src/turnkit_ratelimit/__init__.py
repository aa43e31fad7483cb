"""turnkit-ratelimit: token buckets per principal and per session, kept in the agent's store.

Registered through the ``turnkit.plugins`` entry point ``ratelimit``, which
names :class:`RateLimitPlugin`: the runtime makes one instance per agent,
structures ``[plugin.ratelimit]`` into :class:`RateLimitSettings` and hands it
the execution context, whose storage holds the buckets. It implements one
guard point of the turnkit contract, ``turn_authorize``: a turn over the limit
is denied with a reason saying when to retry.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .bucket import Bucket, BucketStateError, retry_after, seconds_text
from .plugin import ANONYMOUS_KEY, COLLECTION, NAMESPACE, Charge, RateLimitBusy, RateLimitPlugin
from .settings import Limit, RateLimitSettings

try:
    __version__ = version("turnkit-ratelimit")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "ANONYMOUS_KEY",
    "COLLECTION",
    "NAMESPACE",
    "Bucket",
    "BucketStateError",
    "Charge",
    "Limit",
    "RateLimitBusy",
    "RateLimitPlugin",
    "RateLimitSettings",
    "__version__",
    "retry_after",
    "seconds_text",
]
