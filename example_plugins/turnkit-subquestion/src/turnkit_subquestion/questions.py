"""Finding the sub-questions of a message, and the texts the plugin writes about them.

Plain functions over ``str``; :mod:`turnkit_subquestion.plugin` wires them
into a turn.
"""

from __future__ import annotations

from .settings import SubquestionSettings


def find_subquestions(text: str, prefix: str) -> list[str]:
    """The lines of ``text`` that start with ``prefix`` (after indentation), without it.

    Blank questions are skipped and a repeated one is asked once, in order of
    first appearance.

    >>> find_subquestions("Plan the trip.\\n?? Weather in Porto?\\n  ?? Train times?\\n??", "?? ")
    ['Weather in Porto?', 'Train times?']
    """
    found: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(prefix):
            question = stripped[len(prefix) :].strip()
            if question and question not in found:
                found.append(question)
    return found


def answer_summary(question: str, answer: str, settings: SubquestionSettings) -> str:
    """The summary merged into the parent: the question and the child's answer, cut to ``max_answer_chars``.

    >>> answer_summary("Weather in Porto?", "Sunny, 24 °C.", SubquestionSettings())
    'Sub-question: Weather in Porto?\\nAnswer: Sunny, 24 °C.'
    """
    limit = settings.max_answer_chars
    text = answer.strip() if len(answer.strip()) <= limit else answer.strip()[: limit - 1].rstrip() + "…"
    return f"Sub-question: {question}\nAnswer: {text}"


def unanswered(question: str, why: str) -> str:
    """What the parent's prompt says about a sub-question that got no answer."""
    return f"Sub-question not answered: {question}\nReason: {why}"
