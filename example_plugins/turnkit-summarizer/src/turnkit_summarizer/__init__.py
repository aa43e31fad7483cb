"""turnkit-summarizer: extractive summaries for compression and merges, and compression on time.

Registered through the ``turnkit.plugins`` entry point ``summarizer``, which
names :class:`SummarizerPlugin` (the runtime makes one per agent). It
implements two points of the turnkit contract:

* ``session_compress`` (resolve) -- the summary of a compression or of a
  child session's merge: the user's questions, the sentences with decisions,
  numbers and names, and the newest answer, within a character budget. It is
  extractive (copied sentences, no model call), so it is deterministic and
  free, and answers before the runtime's first-sentence digest;
* ``turn_completed`` (effect) -- after each turn, the session is compressed
  when its context window has reached ``compress_at`` (``warn`` by default).

Settings come from the agent's ``[plugin.summarizer]`` table
(:class:`SummarizerSettings`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .extract import HEADER, MERGE_HEADER, Candidate, candidates, score, sentences, summarize
from .plugin import SummarizerPlugin
from .settings import SummarizerSettings

try:
    __version__ = version("turnkit-summarizer")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "HEADER",
    "MERGE_HEADER",
    "Candidate",
    "SummarizerPlugin",
    "SummarizerSettings",
    "__version__",
    "candidates",
    "score",
    "sentences",
    "summarize",
]
