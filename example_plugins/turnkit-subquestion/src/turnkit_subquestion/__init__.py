"""turnkit-subquestion: sub-questions answered in child sessions and merged back into the turn.

Registered through the ``turnkit.plugins`` entry point ``subquestion``, which
names :class:`SubquestionPlugin` (the runtime makes one per agent). A line
of an inbound message starting with the configured prefix (``?? `` by
default) is a sub-question: in the ``turn_prompt`` pipeline the plugin forks
a child session per sub-question, runs the question there as a real turn,
merges the answer back into the parent session and adds it to the prompt
the model is about to answer. A child that fails, is denied or times out is
abandoned, and the prompt says so; a denied fork is reported the same way.

Settings come from the agent's ``[plugin.subquestion]`` table
(:class:`SubquestionSettings`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .plugin import SUBQUESTION, SubquestionPlugin
from .questions import answer_summary, find_subquestions, unanswered
from .settings import SubquestionSettings

try:
    __version__ = version("turnkit-subquestion")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "SUBQUESTION",
    "SubquestionPlugin",
    "SubquestionSettings",
    "__version__",
    "answer_summary",
    "find_subquestions",
    "unanswered",
]
